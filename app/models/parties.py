"""The companies we work with: suppliers (外协厂) and customers (下单客户)."""
from peewee import BooleanField, CharField

from app.models.base import BaseModel


class Supplier(BaseModel):
    code = CharField(max_length=32, unique=True)
    name = CharField(max_length=100)
    contact_name = CharField(max_length=50, null=True)
    contact_phone = CharField(max_length=32, null=True)
    active = BooleanField(default=True)


class Customer(BaseModel):
    code = CharField(max_length=32, unique=True)
    name = CharField(max_length=100)
    contact_name = CharField(max_length=50, null=True)
    contact_phone = CharField(max_length=32, null=True)
    active = BooleanField(default=True)
