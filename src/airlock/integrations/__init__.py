"""Framework integrations. Each submodule imports its framework at the top;
the core (``airlock``) never imports any of them."""
