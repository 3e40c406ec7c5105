from django.apps import AppConfig


class ServerAppConfig(AppConfig):
    name = "serverproject.serverapp"
    label = "serverapp"
