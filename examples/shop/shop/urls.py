from django.urls import path
from store import views

urlpatterns = [
    path("checkout/", views.checkout),
    path("orders/<int:order_id>/", views.order_detail),
]
