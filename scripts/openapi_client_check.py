#!/usr/bin/env python3
"""Every route of the gateway, called through a client generated from its own OpenAPI document.

Usage: openapi_client_check.py BASE_URL PACKAGE_DIR

PACKAGE_DIR holds `openapi.json` (as the gateway serves it) and `hilo_client`, the package
openapi-python-client generated from it (e2e/tests/http.rs does both, with the pinned venv that
scripts/test.sh prepares). Each operation of the document is called once, in an order that
gives the later ones something to work on, and must answer a status the document declares for
it, parsed by the generated code into the declared model. Any failure exits 1, naming the
operation.
"""
from __future__ import annotations

import importlib
import inspect
import io
import json
import sys
import uuid

BASE, PACKAGE_DIR = sys.argv[1], sys.argv[2]
sys.path.insert(0, PACKAGE_DIR)

from hilo_client import AuthenticatedClient, Client  # noqa: E402
from hilo_client.types import File  # noqa: E402

DOC = json.load(open(f"{PACKAGE_DIR}/openapi.json"))
OPERATIONS = {
    op["operationId"]: (op["tags"][0], set(op["responses"]))
    for path in DOC["paths"].values()
    for method, op in path.items()
    if method in ("get", "post", "put", "patch", "delete")
}
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + bytes(64)
called: set[str] = set()


def call(op_id: str, client, expect: int, body: dict | None = None, form=None, **params):
    """Calls `op_id` through the generated module; returns the parsed answer."""
    tag, declared = OPERATIONS[op_id]
    module = importlib.import_module(f"hilo_client.api.{tag}.{op_id}")
    kwargs = dict(params)
    if body is not None or form is not None:
        model = inspect.signature(module.sync_detailed).parameters["body"].annotation
        model = getattr(importlib.import_module(module.__name__), model) if isinstance(model, str) else model
        kwargs["body"] = form if form is not None else model.from_dict(body)
    if hasattr(form, "files"):
        # openapi-python-client sends an array of files as one JSON part (a limit of the
        # generator); an array of binary in a form is the field repeated. Encoded here, sent
        # and parsed by the generated module.
        request = module._get_kwargs(body=type(form)(files=[]))
        request["files"] = [("files", f.to_tuple()) for f in form.files]
        sent = client.get_httpx_client().request(**request)
        response = module._build_response(client=client, response=sent)
    else:
        response = module.sync_detailed(client=client, **kwargs)
    status = response.status_code.value if hasattr(response.status_code, "value") else int(response.status_code)
    problems = []
    if str(status) not in declared:
        problems.append(f"answered {status}, not one of {sorted(declared)}")
    if status != expect:
        problems.append(f"answered {status}, expected {expect}: {response.content[:300]!r}")
    is_json = response.headers.get("content-type", "").startswith("application/json")
    if 200 <= status < 300 and is_json and response.parsed is None:
        problems.append("a JSON answer the generated code did not parse")
    if problems:
        sys.exit(f"{op_id}: " + "; ".join(problems))
    called.add(op_id)
    return response.parsed


def file(name: str, mime: str = "image/png") -> File:
    return File(payload=io.BytesIO(PNG), file_name=name, mime_type=mime)


def fresh() -> Client:
    """A client of its own for each anonymous call: httpx keeps the cookies a response sets,
    and a request that carries the session cookie but no Origin is refused, as a browser's
    could be forged (docs/security.md). A non-browser client uses its bearer token instead."""
    return Client(base_url=BASE)


email = f"gen-{uuid.uuid4().hex[:10]}@example.com"
password = "correct horse battery staple"

call("api_root", fresh(), 200)
signed_up = call("sign_up", fresh(), 200, {"name": "Gen", "email": email, "password": password})
signed_in = call("sign_in", fresh(), 200, {"email": email, "password": password})
me = AuthenticatedClient(base_url=BASE, token=signed_in.token)
user_id = signed_up.user.id
other = call("sign_up", fresh(), 200, {"name": "Other", "email": f"o-{email}", "password": password})

call("get_session", me, 200)
call("session", me, 200)
call("list_accounts", me, 200)
call("unlink_account", me, 400, {"providerId": "credential"})
call("sign_in_social", fresh(), 404, {"provider": "github"})
call("sign_in_redirect", fresh(), 404, provider="github")
call("callback", fresh(), 302, provider="github")
call("error_page", fresh(), 200)
call("expo_authorization_proxy", fresh(), 400)
call("websocket", fresh(), 426)

call("list_users", me, 200)
call("get_user", me, 200, id=user_id)
call("update_user", me, 200, {"name": "Generated"}, id=user_id)

channel = call("create_channel", me, 200, {"name": "generated", "isPrivate": False}).id
call("list_channels", me, 200)
call("get_channel", me, 200, id=channel)
call("update_channel", me, 200, {"description": "made by a generated client"}, id=channel)
call("create_invite", me, 201, {"maxUses": 1}, id=channel)
call("add_member", me, 201, {"channelId": channel, "userId": other.user.id})
call("joined", me, 200)
call("is_joined", me, 200, channel_id=channel)
call("list_members", me, 200, channel_id=channel)
call("get_role", me, 200, channel_id=channel, user_id=user_id)
call("change_role", me, 200, {"role": "moderator"}, channel_id=channel, user_id=other.user.id)

thread = call("create_thread", me, 201, {"channelId": channel, "name": "generated"}).id
call("list_threads", me, 200, channel_id=channel)
call("list_active_threads", me, 200, channel_id=channel)
call("get_thread", me, 200, id=thread)
call("update_thread", me, 200, {"name": "renamed"}, id=thread)
message = call("post_message", me, 201, {"threadId": thread, "content": "hello"}).id
call("history", me, 200, thread_id=thread)
call("get_message", me, 200, id=message)
call("edit_message", me, 200, {"content": "hello again"}, id=message)
call("archive", me, 200, id=thread)
call("unarchive", me, 200, id=thread)

call("info", me, 200)
module = importlib.import_module("hilo_client.models")
for op_id in ("profile_avatar", "profile_banner", "channel_icon", "channel_banner", "message_image"):
    call(op_id, me, 200, form=module.FileForm(file=file(f"{op_id}.png")))
for op_id in ("message_images",):
    call(op_id, me, 200, form=module.FilesForm(files=[file("a.png"), file("b.png")]))
text = lambda name: File(payload=io.BytesIO(b"plain words\n" * 8), file_name=name, mime_type="text/plain")  # noqa: E731
call("message_attachment", me, 200, form=module.FileForm(file=text("notes.txt")))
call("message_attachments", me, 200, form=module.FilesForm(files=[text("a.txt")]))
# Not audio or video: refused by content, as the document says.
for op_id in ("message_audio", "message_video"):
    call(op_id, me, 415, form=module.FileForm(file=text("x.bin")))
for op_id in ("message_audios", "message_videos"):
    call(op_id, me, 415, form=module.FilesForm(files=[text("x.bin")]))
presigned = call("presign", me, 200, {"kind": "profile/avatar", "filename": "p.png", "contentType": "image/png", "size": len(PNG)})
call("complete", me, 404, {"key": presigned.key})
stored = call("profile_avatar", me, 200, form=module.FileForm(file=file("v.png")))
call("validate", me, 200, {"fileKey": stored.data.key, "publicUrl": stored.data.url})

call("delete_message", me, 200, id=message)
call("remove_member", me, 200, channel_id=channel, user_id=other.user.id)
call("delete_thread", me, 200, id=thread)
second = call("create_channel", me, 200, {"name": "left", "isPrivate": False}).id
call("leave", me, 409, channel_id=second)
call("delete_channel", me, 200, id=channel)
call("sign_out", me, 200)
again = call("sign_in", fresh(), 200, {"email": email, "password": password})
call("delete_user", AuthenticatedClient(base_url=BASE, token=again.token), 200, id=user_id)

missing = sorted(set(OPERATIONS) - called)
if missing:
    sys.exit(f"operations never called: {missing}")
print(f"openapi client: {len(called)} operations called through the generated client")
