from django.db import models


class Order(models.Model):
    """The row a request commits; tasks check whether they can read it."""

    label = models.CharField(max_length=100)
