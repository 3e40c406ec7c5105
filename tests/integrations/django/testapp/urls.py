from django.urls import path

from . import views

urlpatterns = [
    path("effect/<int:status>/", views.effect),
    path("explode/", views.explode),
    path("savepoint/", views.savepoint),
    path("async/<int:status>/", views.async_effect),
    path("async/explode/", views.async_explode),
]
