"""Celery's own ``delay_on_commit`` (``celery.contrib.django.task.DjangoTask``), for the comparison.

Eager mode: ``delay`` runs the task right where it is called, in the server
process, so the record shows exactly when Celery would have sent it.
"""

from __future__ import annotations

from celery import Celery

app = Celery("serverproject", task_cls="celery.contrib.django.task:DjangoTask")
app.conf.task_always_eager = True


@app.task
def celery_check_row(label: str, alias: str = "default") -> None:
    from .serverapp.tasks import check_row

    check_row(label, alias)
