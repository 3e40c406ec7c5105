"""Tasks sent by name to workers whose code this project does not import."""

from celery import Celery, current_app

app = Celery("shop", broker="redis://localhost:6379/0")


def request_invoice(order):
    app.send_task("billing.tasks.make_invoice", args=(order.id,))  # expect: AIR001
    current_app.send_task("billing.tasks.archive", kwargs={"order": order.id}, countdown=60)  # expect: AIR001


class Gateway:
    """A client with its own send_task (not Celery's): calling it on self is fine."""

    def send_task(self, name, payload):
        return {"name": name, "payload": payload}

    def forward(self, payload):
        return self.send_task("forward", payload)
