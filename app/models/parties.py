"""The companies we work with: suppliers (外协厂) and customers (下单客户)."""
from peewee import BooleanField, CharField

from app.models.base import BaseModel


class Supplier(BaseModel):
    code = CharField(max_length=32, unique=True)
    name = CharField(max_length=100)
    contact_name = CharField(max_length=50, null=True)
    contact_phone = CharField(max_length=32, null=True)
    active = BooleanField(default=True)
    # The key of the WeCom group robot in a group with this supplier: alerts reach the supplier
    # there when none of its WeChat users has a subscribe message left (never shown back in full).
    robot_key = CharField(max_length=64, null=True)

    @property
    def has_robot(self):
        return bool(self.robot_key)


class Customer(BaseModel):
    code = CharField(max_length=32, unique=True)
    name = CharField(max_length=100)
    contact_name = CharField(max_length=50, null=True)
    contact_phone = CharField(max_length=32, null=True)
    active = BooleanField(default=True)
