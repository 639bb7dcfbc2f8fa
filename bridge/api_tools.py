"""Pieces every app's staff API viewsets share: the 409 for a delete that rows still hold,
and the view of a one-row settings model."""

from typing import Any

from django.db.models import Model, ProtectedError
from rest_framework import exceptions, generics, status

from bridge.models import SingletonModel


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


class SingletonView(generics.RetrieveUpdateAPIView[Any]):
    """A `SingletonModel` read and changed as one object, without an id. `queryset` names the
    model, for the model permissions."""

    def get_object(self) -> SingletonModel:
        model: type[SingletonModel] = self.get_queryset().model
        return model.load()
