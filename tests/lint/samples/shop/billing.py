"""Code that uses actors from another module."""

import smtplib
import socket

import shop.actors
from shop import actors
from shop.actors import charge as charge_card


def bill(order):
    charge_card.send(order.id)  # expect: AIR001
    actors.refund_payment.send(order.id)  # expect: AIR001
    shop.actors.charge.send(order.id)  # expect: AIR001
    actors.charge.send_with_options(args=(order.id,))  # expect: AIR001


def notify(order, host):
    # Ordinary .send() calls on sockets, mailers and signals are not tasks.
    sock = socket.create_connection((host, 25))
    sock.send(b"HELO shop\r\n")
    with smtplib.SMTP(host) as smtp:
        smtp.send(b"NOOP\r\n")
    order.signal.send(sender=order)
