"""Pieces every app's staff API viewsets share: the 409 for a delete that rows still hold."""

from django.db.models import Model, ProtectedError
from rest_framework import exceptions, status


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object is still in use."
    default_code = "conflict"


class ProtectedDestroyMixin:
    """A delete that other rows still point at is a 409 saying what holds it."""

    def perform_destroy(self, instance: Model) -> None:
        try:
            self.delete_instance(instance)
        except ProtectedError as exc:
            holders = sorted({str(obj._meta.verbose_name_plural) for obj in exc.protected_objects})
            raise Conflict(
                f"{instance} is still used by {len(exc.protected_objects)} "
                f"{' and '.join(holders)}; reassign them first."
            ) from exc

    def delete_instance(self, instance: Model) -> None:
        """The delete itself; a viewset whose deletes go through a service overrides it."""
        instance.delete()
