"""Data roles: the composed objects that send or receive a satellite's data (see ``base``)."""

from constellation.roles.base import DataRole, NoDataRole, RoleContext

__all__ = ["DataRole", "NoDataRole", "RoleContext"]
