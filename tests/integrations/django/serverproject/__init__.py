"""A small Django project that the server tests run under real servers (uvicorn, gunicorn).

It is not imported by the in-process test suite: ``test_django_servers.py``
starts it in separate processes with ``DJANGO_SETTINGS_MODULE=serverproject.settings``
and this directory's parent on ``PYTHONPATH``.
"""
