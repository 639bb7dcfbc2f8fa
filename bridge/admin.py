"""Staff API keys in the admin: each staff member sees and revokes their own (superusers
see everyone's); a key's secret is shown once, on the page that made it."""

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from bridge import api_keys
from bridge.models import ApiKey


class NewApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("name", "expires_at")
        widgets = {"expires_at": forms.DateTimeInput(attrs={"placeholder": "YYYY-MM-DD HH:MM"})}

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data["expires_at"]
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return expires_at


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "state", "created_at", "expires_at", "last_used_at")
    list_select_related = ("user",)
    search_fields = ("prefix", "name", "user__username")
    fields = ("name", "user", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at")
    readonly_fields = ("user", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at")
    actions = ("revoke",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiKey]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(user_id=request.user.pk)

    @admin.display(description="state")
    def state(self, obj: ApiKey) -> str:
        return obj.state(timezone.now())

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = api_keys.revoke_api_keys(key_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Revoked {count} key(s).")

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Not the stock add form: the key is made by the service for the signed-in staff
        # member, and the answer is a page showing the secret this once.
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = NewApiKeyForm(request.POST or None)
        context = {**self.admin_site.each_context(request), "opts": self.opts, "form": form}
        if request.method == "POST" and form.is_valid():
            key, secret = api_keys.create_api_key(user=request.user, **form.cleaned_data)
            self.log_addition(request, key, [{"added": {}}])
            context.update(title=f"New API key {key.prefix}…", key=key, secret=secret)
            return TemplateResponse(request, "admin/bridge/apikey/created.html", context)
        context["title"] = "New API key"
        return TemplateResponse(request, "admin/bridge/apikey/add.html", context)
