"""Abstract bases the apps' models share; the bridge app itself has no tables."""

from typing import Any, Self

from django.db import models
from django.db.models import Q


class SingletonModel(models.Model):
    """A table of staff settings that holds exactly one row, id 1. `load()` reads it (and
    makes it with the defaults the first time); the constraint is the last line of defence
    against a second row."""

    SINGLETON_PK = 1

    class Meta:
        abstract = True
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="%(class)s_singleton"),
        ]

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.pk = self.SINGLETON_PK
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> Self:
        obj, _ = cls._default_manager.get_or_create(pk=cls.SINGLETON_PK)
        return obj
