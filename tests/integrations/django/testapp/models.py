from __future__ import annotations

from django.db import models


class Order(models.Model):
    """A row the tests write, so commits and rollbacks are real."""

    label = models.CharField(max_length=50)

    class Meta:
        app_label = "testapp"
