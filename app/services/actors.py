"""Who did something, in one shape for audit entries and idempotency keys."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    type: str  # staff | wechat | api_key | system
    id: str = None
    label: str = None

    @property
    def key(self):
        """Namespace for client_id idempotency: one phone user's ids never collide with another's."""
        return f"{self.type}:{self.id}"

    @classmethod
    def staff(cls, user):
        return cls("staff", str(user.id), user.display_name)

    @classmethod
    def wechat(cls, user):
        return cls("wechat", str(user.id), user.display_name or f"微信用户{user.id}")

    @classmethod
    def api_key(cls, key):
        return cls("api_key", str(key.id), key.name)

    @classmethod
    def system(cls, label="系统"):
        return cls("system", None, label)
