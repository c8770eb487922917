"""All models, in dependency order (what migrations and the test cleanup walk)."""
from app.models.audit import AuditChain, AuditEntry, ClientRequest, SupplierScore
from app.models.materials import (
    BatchMaterial,
    MaterialBillLine,
    MaterialIssue,
    MaterialItem,
    MaterialLot,
    MaterialReturn,
)
from app.models.notify import Alert, InboundMessage, NodeSubscription, Notification, SubscribeQuota
from app.models.orders import (
    EtaRevision,
    NodeCompletion,
    NodeInstance,
    NodeTemplate,
    NodeTemplateItem,
    Order,
    Photo,
    ProgressReport,
    Task,
    TaskIssue,
    Urge,
)
from app.models.parties import Customer, Supplier
from app.models.quality import (
    Batch,
    BatchMovement,
    Inspection,
    InspectionItem,
    InspectionResult,
    InspectionTemplate,
    Nonconformance,
)
from app.models.users import ApiKey, Invite, StaffUser, WechatUser

ALL_MODELS = [
    Supplier,
    Customer,
    StaffUser,
    WechatUser,
    ApiKey,
    Invite,
    NodeTemplate,
    NodeTemplateItem,
    Order,
    Task,
    NodeInstance,
    NodeCompletion,
    ProgressReport,
    TaskIssue,
    Photo,
    Urge,
    EtaRevision,
    InspectionTemplate,
    InspectionItem,
    Batch,
    BatchMovement,
    Inspection,
    InspectionResult,
    Nonconformance,
    MaterialItem,
    MaterialLot,
    MaterialIssue,
    MaterialReturn,
    MaterialBillLine,
    BatchMaterial,
    Alert,
    Notification,
    SubscribeQuota,
    NodeSubscription,
    InboundMessage,
    AuditEntry,
    AuditChain,
    ClientRequest,
    SupplierScore,
]

__all__ = [m.__name__ for m in ALL_MODELS] + ["ALL_MODELS"]
