"""Celery tasks of a small shop."""

from celery import Celery, chain, group, shared_task

app = Celery("shop")


@app.task(bind=True, max_retries=3)
def send_receipt(self, order_id):
    try:
        deliver(order_id)
    except ConnectionError as error:
        raise self.retry(exc=error)
    rebuild_cache.delay()  # expect: AIR001


@shared_task
def rebuild_cache():
    pass


def deliver(order_id):
    # A comment that mentions send_receipt.delay(order_id) is not code.
    message = "call send_receipt.delay(order_id) later"
    return message


def fan_out(order_ids):
    group(send_receipt.s(i) for i in order_ids).apply_async()  # expect: AIR001
    chain(send_receipt.s(1), rebuild_cache.si()).delay()  # expect: AIR001
    send_receipt.s(2).delay()  # expect: AIR001
    signature = send_receipt.s(3)
    signature.apply_async(countdown=10)  # expect: AIR001
