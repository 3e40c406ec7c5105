from django.urls import path

from .serverapp import views

urlpatterns = [
    path("health/", views.health),
    path("write/<str:label>/", views.write),
    path("raise/<str:label>/", views.raising),
    path("disconnect/<str:label>/", views.disconnect),
    path("savepoint/<str:label>/", views.savepoint),
]
