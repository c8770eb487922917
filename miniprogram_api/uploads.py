"""Mini program: photo uploads. Suppliers upload; direct to OSS when configured, else through us."""
from apiflask import APIBlueprint, Schema
from apiflask.fields import File, Integer, String
from apiflask.validators import OneOf, Range
from flask import g, url_for

from app.services import images, photos
from app.web.auth import mp_auth, wechat_role
from miniprogram_api.schemas import ConfirmOut, PolicyOut, UploadedPhotoOut

bp = APIBlueprint("mp_uploads", __name__, tag="小程序 · 照片")


class PolicyIn(Schema):
    purpose = String(required=True, validate=OneOf(photos.PURPOSES))
    content_type = String(required=True, validate=OneOf(list(photos.CONTENT_TYPES)))
    size = Integer(required=True, validate=Range(min=1), metadata={"description": "bytes, at most 10 MB"})


class UploadIn(Schema):
    file = File(required=True, metadata={"description": "a JPEG, PNG or WebP photo, at most 10 MB"})
    purpose = String(load_default="progress", validate=OneOf(photos.PURPOSES))


@bp.post("/uploads/policy")
@bp.auth_required(mp_auth)
@wechat_role("supplier")
@bp.input(PolicyIn, arg_name="body")
@bp.output(PolicyOut)
@bp.doc(responses={403: "不是供应商用户", 413: "照片过大"})
def upload_policy(body):
    """How to upload one photo: a signed OSS PostObject form for a key the server chose (valid
    10 minutes, size and type limited), or — without OSS — the server upload route."""
    policy = photos.upload_policy(g.wechat_user, body["purpose"], body["content_type"], body["size"])
    if policy.method == "server":
        policy.url = url_for("mp_uploads.upload")
    return policy


@bp.post("/uploads/<int:photo_id>/confirm")
@bp.auth_required(mp_auth)
@bp.output(ConfirmOut)
@bp.doc(responses={404: "照片不存在", 409: "照片尚未上传（upload_missing）", 413: "照片过大"})
def confirm_upload(photo_id):
    """After a direct upload: check the object is in storage and start processing. Repeatable.
    Answers as the server upload does (`duplicate`, `status`, links)."""
    return photos.confirm(g.wechat_user, photo_id)


@bp.post("/uploads")
@bp.auth_required(mp_auth)
@wechat_role("supplier")
@bp.input(UploadIn, location="files", arg_name="body")
@bp.output(UploadedPhotoOut, status_code=201)
@bp.doc(responses={200: {"description": "同一张照片已上传过且未使用：返回原照片（duplicate: true），不新建",
                         "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UploadedPhotoOut"}}}},
                   403: "不是供应商用户",
                   413: "照片过大（file_too_large）",
                   422: "不是图片（not_an_image）、格式不支持（unsupported_image_type）或像素过多（image_too_large）"})
def upload(body):
    """Upload a photo through the server (the embedded default's path, and the fallback when
    direct upload fails). The type is read from the bytes, never from the name."""
    data = body["file"].stream.read(images.MAX_BYTES + 1)  # never hold more than the limit
    photo, created = photos.upload(g.wechat_user, data, body["purpose"])
    return photo if created else (photo, 200)
