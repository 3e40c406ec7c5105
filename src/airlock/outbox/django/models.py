"""The outbox table for Django: one row per stored intent."""

from __future__ import annotations

from django.db import models

from .._model import DEAD, DONE, INFLIGHT, PENDING

__all__ = ["OutboxKey", "OutboxRow"]


class OutboxRow(models.Model):
    """An intent stored by `DjangoOutboxScope`, waiting for (or done by) the relay.

    Same columns as the SQLAlchemy table; the row id (``outbox_id``, column
    ``id``) is the idempotency key handed to the task.
    """

    STATE_CHOICES = [(PENDING, "pending"), (INFLIGHT, "in flight"), (DONE, "done"), (DEAD, "dead")]

    seq = models.BigAutoField(primary_key=True)
    outbox_id = models.CharField("id", max_length=36, unique=True, db_column="id")
    task = models.CharField(max_length=255)
    name = models.CharField(max_length=200)
    args = models.TextField()
    kwargs = models.TextField()
    options = models.TextField(null=True, blank=True)
    ordering_key = models.CharField(max_length=200, null=True, blank=True)
    origin = models.TextField(null=True, blank=True)
    context = models.TextField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=STATE_CHOICES, default=PENDING)
    attempts = models.IntegerField(default=0)
    created_at = models.DateTimeField()
    available_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=36, null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(null=True, blank=True)

    class Meta:
        db_table = "airlock_outbox"
        ordering = ["seq"]
        verbose_name = "outbox row"
        indexes = [
            models.Index(fields=["state", "seq"], name="airlock_outbox_claim_idx"),
            models.Index(fields=["ordering_key", "seq"], name="airlock_outbox_key_idx"),
            models.Index(fields=["claim_token"], name="airlock_outbox_token_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} [{self.state}] {self.outbox_id}"


class OutboxKey(models.Model):
    """The ordering-key lock row: a transaction writing rows with a key holds it until it commits.

    So transactions writing the same key take turns and their rows are
    numbered (``seq``) in commit order, the order the relay dispatches them in.
    """

    ordering_key = models.CharField(max_length=200, primary_key=True)
    writes = models.BigIntegerField(default=0)

    class Meta:
        db_table = "airlock_outbox_keys"
        verbose_name = "outbox ordering key"
