"""Huey jobs: calling a Huey task enqueues it."""

from huey import RedisHuey, crontab
from huey.contrib.djhuey import db_task

huey = RedisHuey("shop")


@huey.task(retries=2)
def resize_image(path):
    pass


@huey.periodic_task(crontab(minute="0", hour="3"))
def nightly_report():
    pass


@db_task()
def export_orders():
    pass


def on_upload(path):
    resize_image(path)  # expect: AIR001
    resize_image.schedule((path,), delay=60)  # expect: AIR001
    resize_image.call_local(path)
    export_orders()  # expect: AIR001


def shadowed(resize_image):
    resize_image("x")  # a parameter of the same name, not the task


def reschedule(scheduler, job):
    scheduler.schedule(job)
