"""A Celery app that the real-worker tests run as ``celery -A integrations.celery_worker.app worker``."""
