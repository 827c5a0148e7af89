"""Operations of resource policies, function URL configurations, event source mappings and
lambdalet's schedules endpoints: parse → validate →
one store call → render (the route table is ``trigger_routes``)."""

from __future__ import annotations

import json
import math
import secrets
import string
import uuid
from dataclasses import replace

from aiohttp import web

from lambdalet.api import event_sources, policies, render, shapes, validation
from lambdalet.api import function_urls as urls
from lambdalet.api.arns import Scope, function_arn, parse_function_name, validation_message
from lambdalet.api.http_apis import HttpApi
from lambdalet.api.plumbing import function_target
from lambdalet.api.route_gateway import RouteGateway
from lambdalet.clock import Clock
from lambdalet.errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    ResourceInUseException,
    ResourceNotFoundException,
    ValidationException,
)
from lambdalet.model import LATEST
from lambdalet.store import Store
from lambdalet.store.triggers import NO_POLICY, MappingRecord, ScheduleRow, UrlConfig
from lambdalet.triggers import states
from lambdalet.triggers.mappings import MappingManager
from lambdalet.triggers.schedules import ScheduleRunner
from lambdalet.triggers.schedules import iso_z as schedule_iso
from lambdalet.triggers.sqs_events import parse_queue_arn
from lambdalet.triggers.sqs_poller import NO_RECORDS

POLICY_PATH = "/2015-03-31/functions/{name}/policy"
URL_PATH = "/2021-10-31/functions/{name}/url"
URLS_PATH = "/2021-10-31/functions/{name}/urls"
ESM_PATH = "/2015-03-31/event-source-mappings"
#: lambdalet's own endpoints, used by ``lambdalet deploy`` and ``lambdalet schedules``
SCHEDULES_PATH = "/lambdalet/triggers/schedules"
STACK_PATH = "/lambdalet/triggers/stacks/{stack}"
APIS_PATH = "/lambdalet/triggers/apis"
_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_url_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(32))


def function_url(request: web.Request, url_id: str) -> str:
    """The address a client on this host opens as is: the server's own host and port."""
    return f"{request.scheme}://{request.host}{urls.URL_PREFIX}{url_id}/"


class TriggerHandlers:
    def __init__(
        self,
        scope: Scope,
        store: Store,
        clock: Clock,
        mappings: MappingManager,
        schedules: ScheduleRunner,
        routes: RouteGateway,
    ) -> None:
        self.scope = scope
        self.store = store
        self.clock = clock
        self.mappings = mappings
        self.schedules = schedules
        self.routes = routes

    def _target(self, request: web.Request) -> tuple[str, str | None]:
        return function_target(request, self.scope)

    # ------------------------------------------------------------- policies

    def _policy_target(self, request: web.Request) -> tuple[str, str]:
        """(function, qualifier or '') after checking both exist."""
        name, qualifier = self._target(request)
        if qualifier == LATEST:
            raise InvalidParameterValueException(
                "We currently do not support adding policies for $LATEST."
            )
        self.store.resolve(name, qualifier)
        return name, qualifier or ""

    async def add_permission(self, request: web.Request) -> web.Response:
        name, qualifier = self._policy_target(request)
        p = policies.permission(validation.json_body(await request.read()))
        resource = function_arn(self.scope, name, qualifier or None)
        st = policies.statement(p, resource)
        self.store.add_statement(name, qualifier, st, p.revision_id)
        return render.json_response({"Statement": json.dumps(st, separators=(",", ":"))}, 201)

    async def get_policy(self, request: web.Request) -> web.Response:
        name, qualifier = self._policy_target(request)
        policy = self.store.get_policy(name, qualifier)
        if policy is None:
            raise ResourceNotFoundException(NO_POLICY)
        text = json.dumps(policies.document(policy.statements), separators=(",", ":"))
        return render.json_response({"Policy": text, "RevisionId": policy.revision_id})

    async def remove_permission(self, request: web.Request) -> web.Response:
        name, qualifier = self._policy_target(request)
        sid = policies.statement_id(request.match_info["sid"])
        self.store.remove_statement(name, qualifier, sid, request.query.get("RevisionId"))
        return render.empty(204)

    # -------------------------------------------------------- function URLs

    def _url_target(self, request: web.Request) -> tuple[str, str]:
        name, qualifier = self._target(request)
        q = urls.url_qualifier(qualifier)
        self.store.resolve(name, q or None)
        return name, q

    def _shape(
        self, request: web.Request, cfg: UrlConfig, *, last_modified: bool = True
    ) -> dict[str, object]:
        return urls.url_config_shape(
            url=function_url(request, cfg.url_id),
            function_arn=function_arn(self.scope, cfg.function_name, cfg.qualifier or None),
            auth_type=cfg.auth_type,
            cors=cfg.cors,
            invoke_mode=cfg.invoke_mode,
            creation_time=cfg.creation_time,
            last_modified=cfg.last_modified if last_modified else None,
        )

    async def create_url_config(self, request: web.Request) -> web.Response:
        name, qualifier = self._url_target(request)
        s = urls.url_settings(validation.json_body(await request.read()), create=True)
        now = urls.iso_time(self.clock.wall())
        assert s.auth_type is not None
        cfg = self.store.create_url_config(
            UrlConfig(
                url_id=new_url_id(),
                function_name=name,
                qualifier=qualifier,
                auth_type=s.auth_type,
                cors=s.cors,
                invoke_mode=s.invoke_mode or "BUFFERED",
                creation_time=now,
                last_modified=now,
            )
        )
        return render.json_response(self._shape(request, cfg, last_modified=False), 201)

    async def get_url_config(self, request: web.Request) -> web.Response:
        name, qualifier = self._url_target(request)
        return render.json_response(
            self._shape(request, self.store.get_url_config(name, qualifier))
        )

    async def update_url_config(self, request: web.Request) -> web.Response:
        name, qualifier = self._url_target(request)
        s = urls.url_settings(validation.json_body(await request.read()), create=False)
        old = self.store.get_url_config(name, qualifier)
        cfg = self.store.update_url_config(
            UrlConfig(
                url_id=old.url_id,
                function_name=name,
                qualifier=qualifier,
                auth_type=s.auth_type or old.auth_type,
                cors=old.cors if s.cors is None else s.cors,
                invoke_mode=s.invoke_mode or old.invoke_mode,
                creation_time=old.creation_time,
                last_modified=urls.iso_time(self.clock.wall()),
            )
        )
        return render.json_response(self._shape(request, cfg))

    async def delete_url_config(self, request: web.Request) -> web.Response:
        name, qualifier = self._url_target(request)
        self.store.delete_url_config(name, qualifier)
        return render.empty(204)

    async def list_url_configs(self, request: web.Request) -> web.Response:
        name, _ = self._target(request)
        self.store.get_function(name)
        params = validation.list_params(request.query, 50)
        page = self.store.list_url_configs(name, params.after, params.limit)
        items = [self._shape(request, c) for c in page.items]
        return render.json_response(shapes.paged("FunctionUrlConfigs", items, page.next_after))

    # ------------------------------------------------- event source mappings

    def _esm_shape(self, m: MappingRecord) -> dict[str, object]:
        return event_sources.configuration(
            uuid=m.uuid,
            mapping_arn=(
                f"arn:aws:lambda:{self.scope.region}:{self.scope.account_id}"
                f":event-source-mapping:{m.uuid}"
            ),
            source_arn=m.source_arn,
            function_arn=function_arn(self.scope, m.function_name, m.qualifier or None),
            settings=m.settings,
            state=m.state,
            last_modified=m.last_modified,
            last_result=m.last_result,
        )

    def _esm_function(self, value: object) -> tuple[str, str]:
        if not isinstance(value, str):
            raise ValidationException(
                validation_message(value, "functionName", "Member must not be null")
            )
        ref = parse_function_name(value, self.scope)
        self.store.resolve(ref.name, ref.qualifier)
        return ref.name, "" if ref.qualifier in (None, LATEST) else str(ref.qualifier)

    async def create_mapping(self, request: web.Request) -> web.Response:
        body = validation.json_body(await request.read())
        name, qualifier = self._esm_function(body.get("FunctionName"))
        patch = event_sources.settings(body, create=True)
        queue = parse_queue_arn(body["EventSourceArn"])
        mapping = self.store.put_mapping(
            MappingRecord(
                uuid=str(uuid.uuid4()),
                function_name=name,
                qualifier=qualifier,
                source_arn=queue.arn,
                settings=event_sources.merged({}, patch, queue.fifo),
                state=states.CREATING,
                last_modified=self.clock.wall(),
                last_result=NO_RECORDS,
            )
        )
        self.mappings.settle(mapping.uuid)
        return render.json_response(self._esm_shape(mapping), 202)

    async def get_mapping(self, request: web.Request) -> web.Response:
        return render.json_response(
            self._esm_shape(self.store.get_mapping(request.match_info["uuid"]))
        )

    def _changeable(self, mapping_uuid: str) -> MappingRecord:
        m = self.store.get_mapping(mapping_uuid)
        if m.state in states.TRANSITIONAL:
            raise ResourceInUseException(
                f"Cannot update the event source mapping because it is in use. "
                f"Current state: {m.state}"
            )
        return m

    async def update_mapping(self, request: web.Request) -> web.Response:
        body = validation.json_body(await request.read())
        old = self._changeable(request.match_info["uuid"])
        name, qualifier = old.function_name, old.qualifier
        if body.get("FunctionName") is not None:
            name, qualifier = self._esm_function(body["FunctionName"])
        patch = event_sources.settings(body, create=False)
        queue = parse_queue_arn(old.source_arn)
        settings = event_sources.merged(old.settings, patch, queue.fifo)
        was, now = bool(old.settings.get("Enabled", True)), bool(settings["Enabled"])
        state = states.UPDATING if was == now else (states.ENABLING if now else states.DISABLING)
        mapping = self.store.put_mapping(
            replace(
                old,
                function_name=name,
                qualifier=qualifier,
                settings=settings,
                state=state,
                last_modified=self.clock.wall(),
            )
        )
        self.mappings.settle(mapping.uuid)
        return render.json_response(self._esm_shape(mapping), 202)

    async def delete_mapping(self, request: web.Request) -> web.Response:
        old = self._changeable(request.match_info["uuid"])
        self.store.set_mapping_state(old.uuid, states.DELETING)
        self.mappings.settle(old.uuid)
        return render.json_response(self._esm_shape(replace(old, state=states.DELETING)), 202)

    async def list_mappings(self, request: web.Request) -> web.Response:
        params = validation.list_params(request.query, 10000)
        fn = request.query.get("FunctionName")
        name = None if fn is None else parse_function_name(fn, self.scope).name
        source = request.query.get("EventSourceArn")
        page = self.store.list_mappings(
            function_name=name, source_arn=source, after=params.after, limit=params.limit
        )
        items = [self._esm_shape(m) for m in page.items]
        return render.json_response(shapes.paged("EventSourceMappings", items, page.next_after))

    # ------------------------------------------- schedules (lambdalet's own API)

    @staticmethod
    def _schedule_shape(row: ScheduleRow) -> dict[str, object]:
        nxt = row.next_fire
        return {
            "Stack": row.stack,
            **dict(row.spec),
            "NextFireTime": schedule_iso(nxt) if math.isfinite(nxt) else None,
        }

    async def put_stack_schedules(self, request: web.Request) -> web.Response:
        body = validation.json_body(await request.read())
        raw = body.get("Schedules", [])
        if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
            raise InvalidRequestContentException(
                "Could not parse request body into json: Schedules must be a list of objects"
            )
        rows = self.schedules.replace_stack(request.match_info["stack"], raw)
        return render.json_response({"Schedules": [self._schedule_shape(r) for r in rows]})

    async def list_schedules(self, request: web.Request) -> web.Response:
        rows = self.store.schedules(request.query.get("Stack"))
        return render.json_response({"Schedules": [self._schedule_shape(r) for r in rows]})

    # ------------------------------------------- HTTP APIs (lambdalet's own API)

    @staticmethod
    def _endpoints(request: web.Request, apis: list[HttpApi]) -> list[dict[str, object]]:
        base = f"{request.scheme}://{request.host}"
        out: list[dict[str, object]] = []
        for api in apis:
            for r in api.routes:
                path = "/" if r.path == "$default" else r.path
                out.append(
                    {
                        "stack": api.stack,
                        "api": api.api_id,
                        "kind": api.kind,
                        "route": r.route_key if api.kind == "HttpApi" else f"{r.method} {r.path}",
                        "function": r.function_name + (f":{r.qualifier}" if r.qualifier else ""),
                        "payloadFormatVersion": r.payload_version,
                        "url": base + api.base_path + path,
                    }
                )
        return out

    async def put_stack_apis(self, request: web.Request) -> web.Response:
        body = validation.json_body(await request.read())
        raw = body.get("Apis", [])
        if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
            raise InvalidRequestContentException(
                "Could not parse request body into json: Apis must be a list of objects"
            )
        apis = self.routes.replace_stack(request.match_info["stack"], raw)
        return render.json_response({"Endpoints": self._endpoints(request, apis)})

    async def list_apis(self, request: web.Request) -> web.Response:
        apis = self.routes.apis(request.query.get("Stack"))
        return render.json_response({"Endpoints": self._endpoints(request, apis)})


def trigger_routes(h: TriggerHandlers) -> list[web.RouteDef]:
    return [
        web.post(POLICY_PATH, h.add_permission, name="AddPermission"),
        web.get(POLICY_PATH, h.get_policy, name="GetPolicy"),
        web.delete(POLICY_PATH + "/{sid}", h.remove_permission, name="RemovePermission"),
        web.post(URL_PATH, h.create_url_config, name="CreateFunctionUrlConfig"),
        web.get(URL_PATH, h.get_url_config, name="GetFunctionUrlConfig"),
        web.put(URL_PATH, h.update_url_config, name="UpdateFunctionUrlConfig"),
        web.delete(URL_PATH, h.delete_url_config, name="DeleteFunctionUrlConfig"),
        web.get(URLS_PATH, h.list_url_configs, name="ListFunctionUrlConfigs"),
        web.post(ESM_PATH, h.create_mapping, name="CreateEventSourceMapping"),
        web.post(ESM_PATH + "/", h.create_mapping),
        web.get(ESM_PATH, h.list_mappings, name="ListEventSourceMappings"),
        web.get(ESM_PATH + "/", h.list_mappings),
        web.get(ESM_PATH + "/{uuid}", h.get_mapping, name="GetEventSourceMapping"),
        web.put(ESM_PATH + "/{uuid}", h.update_mapping, name="UpdateEventSourceMapping"),
        web.delete(ESM_PATH + "/{uuid}", h.delete_mapping, name="DeleteEventSourceMapping"),
        web.get(SCHEDULES_PATH, h.list_schedules, name="lambdalet:ListSchedules"),
        web.put(STACK_PATH + "/schedules", h.put_stack_schedules, name="lambdalet:PutSchedules"),
        web.get(APIS_PATH, h.list_apis, name="lambdalet:ListApis"),
        web.put(STACK_PATH + "/apis", h.put_stack_apis, name="lambdalet:PutApis"),
    ]
