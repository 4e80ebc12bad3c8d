"""Push notifications: the push rules API, pushers and /notifications."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field, query_int, query_str
from ranvier.web.routing import Routes

routes = Routes()

#: Largest page of GET /notifications.
MAX_NOTIFICATIONS = 100


@routes.get("/pushrules/")
async def get_all_rulesets(request: web.Request) -> web.Response:
    """GET /pushrules/: every ruleset of the user; only `global` exists. The server-default
    rules of the current spec, the user's own merged in the spec's order (`.m.rule.master`
    first, then per kind the user's rules before the defaults)."""
    who = await requester(request, allow_guest=True)
    return json_response(request.app[HOMESERVER].push.rules_content(who.user_id))


@routes.get("/pushrules/global/")
async def get_global_ruleset(request: web.Request) -> web.Response:
    """GET /pushrules/global/: the global ruleset, as in GET /pushrules/."""
    who = await requester(request, allow_guest=True)
    return json_response(request.app[HOMESERVER].push.rules_content(who.user_id)["global"])


@routes.get("/pushrules/global/{kind}/{rule_id}")
async def get_rule(request: web.Request) -> web.Response:
    """GET /pushrules/global/{kind}/{ruleId}: one rule; an unknown kind is 400
    M_INVALID_PARAM, an unknown rule 404 M_NOT_FOUND."""
    who = await requester(request)
    return json_response(request.app[HOMESERVER].push.rule(who.user_id, *_rule_key(request)))


@routes.put("/pushrules/global/{kind}/{rule_id}")
async def put_rule(request: web.Request) -> web.Response:
    """PUT /pushrules/global/{kind}/{ruleId}: add or replace one of the user's rules.

    IDs starting with `.` (server-default rules) and IDs with slashes are refused (400
    M_INVALID_PARAM); `actions` is required (historical `dont_notify` and `coalesce` are
    accepted and dropped; an unknown action is M_BAD_JSON); content rules need `pattern`,
    override and underride rules take `conditions`. A new rule without `before`/`after` is
    the most important of its kind; `before` (which wins over `after`) and `after` name
    another rule of the user's (400 M_UNKNOWN when there is none). Replacing a rule
    without them keeps its place. The change is stored as `m.push_rules` account data and
    reaches the user's other clients in /sync.
    """
    who = await requester(request)
    kind, rule_id = _rule_key(request)
    body = await read_json(request)
    await request.app[HOMESERVER].push.put_rule(who.user_id, kind, rule_id, body, before=query_str(request, "before"),
                                                after=query_str(request, "after"))
    return json_response({})


@routes.delete("/pushrules/global/{kind}/{rule_id}")
async def delete_rule(request: web.Request) -> web.Response:
    """DELETE /pushrules/global/{kind}/{ruleId}: remove one of the user's rules; server-default
    rules cannot be deleted (400 M_INVALID_PARAM), an unknown rule is 404 M_NOT_FOUND."""
    who = await requester(request)
    await request.app[HOMESERVER].push.delete_rule(who.user_id, *_rule_key(request))
    return json_response({})


@routes.get("/pushrules/global/{kind}/{rule_id}/enabled")
async def get_enabled(request: web.Request) -> web.Response:
    """GET /pushrules/global/{kind}/{ruleId}/enabled: whether a rule is enabled (404 if none)."""
    who = await requester(request)
    rule = request.app[HOMESERVER].push.rule(who.user_id, *_rule_key(request))
    return json_response({"enabled": rule["enabled"]})


@routes.put("/pushrules/global/{kind}/{rule_id}/enabled")
async def put_enabled(request: web.Request) -> web.Response:
    """PUT /pushrules/global/{kind}/{ruleId}/enabled: enable or disable a rule, the user's or a
    server-default one; `enabled` must be a boolean; idempotent."""
    who = await requester(request)
    kind, rule_id = _rule_key(request)
    enabled = field(await read_json(request), "enabled", bool, required=True)
    await request.app[HOMESERVER].push.set_enabled(who.user_id, kind, rule_id, enabled)
    return json_response({})


@routes.get("/pushrules/global/{kind}/{rule_id}/actions")
async def get_actions(request: web.Request) -> web.Response:
    """GET /pushrules/global/{kind}/{ruleId}/actions: a rule's actions (404 if none)."""
    who = await requester(request)
    rule = request.app[HOMESERVER].push.rule(who.user_id, *_rule_key(request))
    return json_response({"actions": rule["actions"]})


@routes.put("/pushrules/global/{kind}/{rule_id}/actions")
async def put_actions(request: web.Request) -> web.Response:
    """PUT /pushrules/global/{kind}/{ruleId}/actions: change a rule's actions, the user's or a
    server-default one; `actions` is checked as in PUT of a rule; idempotent."""
    who = await requester(request)
    kind, rule_id = _rule_key(request)
    body = await read_json(request)
    if "actions" not in body:
        raise MatrixError("M_MISSING_PARAM", "Missing required field: actions")
    await request.app[HOMESERVER].push.set_actions(who.user_id, kind, rule_id, body["actions"])
    return json_response({})


def _rule_key(request: web.Request) -> tuple[str, str]:
    return request.match_info["kind"], request.match_info["rule_id"]


@routes.get("/pushers")
async def get_pushers(request: web.Request) -> web.Response:
    """GET /pushers: the user's pushers (those whose device still exists)."""
    who = await requester(request)
    return json_response({"pushers": await request.app[HOMESERVER].pushers.of_user(who.user_id)})


@routes.post("/pushers/set")
async def set_pusher(request: web.Request) -> web.Response:
    """POST /pushers/set: create or update the user's pusher of (`app_id`, `pushkey`), or with
    `kind: null` delete it (idempotent).

    `kind`, `app_id` (at most 64 characters) and `pushkey` (at most 512 bytes) are
    required; a new or updated pusher also needs `app_display_name`, `device_display_name`,
    `lang` and `data` (400 M_MISSING_PARAM naming them). Only `http` pushers exist: `email`
    is refused (this server sends no email), as is any other kind (M_INVALID_PARAM).
    `data.url` must be an https URL (or start with one of `push.http_gateway_urls`) whose
    path is `/_matrix/push/v1/notify`, not on a literal address the server does not reach;
    `data.format` may only be `event_id_only`. Without `append: true`, other users' pushers
    with the same app and pushkey are removed. The pusher belongs to the calling device and
    is removed with it.
    """
    who = await requester(request)
    await request.app[HOMESERVER].pushers.set(who, await read_json(request))
    return json_response({})


@routes.get("/notifications")
async def get_notifications(request: web.Request) -> web.Response:
    """GET /notifications: the events that notified the user (the `notify` action), newest
    first, each with its actions, the event, `read` (a receipt is at or after it), room ID
    and time. `from` is a `next_token` of an earlier page (400 M_INVALID_PARAM otherwise),
    `limit` at most 100 (default 20), `only=highlight` keeps highlighted ones."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    token = query_str(request, "from")
    if token is not None and not token.isdigit():
        raise MatrixError("M_INVALID_PARAM", "from is not a token of this endpoint")
    limit = query_int(request, "limit", 20, minimum=1, maximum=MAX_NOTIFICATIONS)
    only = query_str(request, "only")
    found = await hs.push.notifications(who.user_id, before=int(token) if token else None, limit=limit,
                                        highlight_only=only == "highlight")
    rows = await hs.rooms.store.get_event_rows([n["event_id"] for n in found])
    events = dict(zip([n["event_id"] for n in found if n["event_id"] in rows],
                      await hs.timeline.serialize([rows[n["event_id"]] for n in found if n["event_id"] in rows], who)))
    notifications = []
    for item in found:
        event = events.get(item["event_id"])
        if event is None:
            continue
        notifications.append({"actions": item["actions"], "event": event, "read": item["read"],
                              "room_id": item["room_id"], "ts": item["ts"] or event.get("origin_server_ts", 0)})
    body: dict = {"notifications": notifications}
    if len(found) == limit:
        body["next_token"] = str(found[-1]["stream"])
    return json_response(body)
