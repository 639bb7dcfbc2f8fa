from django.urls import path

from payments import views as payment_views
from users import views

# The invoice pages (issue 5) go under /account/invoices/.
urlpatterns = [
    path("", views.account_home, name="account-home"),
    path("login/", views.AccountLoginView.as_view(), name="account-login"),
    path("logout/", views.AccountLogoutView.as_view(), name="account-logout"),
    path("control-panel/", views.open_control_panel, name="account-control-panel"),
    path("language/", views.set_language, name="account-language"),
    path("payments/", payment_views.payments, name="account-payments"),
    path("forgot/", views.forgot_password, name="account-forgot"),
    path("forgot/sent/", views.forgot_password_sent, name="account-forgot-sent"),
    # The key comes in the link's #fragment and the form's body, never in the path.
    path("reset/", views.reset_password, name="account-reset"),
]
