"""Direct dispatches kept on purpose, silenced per line."""

from .tasks import rebuild_cache, send_receipt


def legacy_paths(order):
    send_receipt.delay(order.id)  # noqa: AIR001
    send_receipt.delay(order.id)  # noqa
    rebuild_cache.apply_async()  # NOQA:AIR001
    rebuild_cache.apply_async(queue="x")  # noqa: E501,AIR001
    rebuild_cache.delay()  # noqa: E501  # expect: AIR001
    rebuild_cache.delay()  # noqa: AIR002  # expect: AIR001
