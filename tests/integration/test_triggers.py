"""Triggers end to end on one real server: resource policies through the AWS CLI and
boto3, function URLs through urllib against real Python functions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import HOST_PY, ROOT, Server, aws_cli, create, unique

pytestmark = pytest.mark.integration


ECHO = """
import base64, json

def handler(event, context):
    if event.get("rawPath") == "/fail":
        raise RuntimeError("boom")
    if event.get("rawPath") == "/bare":
        return "Hello, world!"
    return {
        "statusCode": 200,
        "headers": {
            "content-type": "application/json",
            "x-seen": event.get("rawPath") or event.get("path"),
        },
        "cookies": ["session=1; HttpOnly"],
        "body": json.dumps({"event": event, "requestId": context.aws_request_id}),
    }
"""


def aws(server: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return aws_cli(server.url, "lambda", *args, check=check)


def http(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_policies_with_the_aws_cli(server: Server, lam: Any) -> None:
    name = create(lam, {"app.py": ECHO})
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    out = aws(
        server,
        "add-permission",
        "--function-name",
        name,
        "--statement-id",
        "s3",
        "--action",
        "lambda:InvokeFunction",
        "--principal",
        "s3.amazonaws.com",
        "--source-arn",
        "arn:aws:s3:::my-bucket",
    )
    statement = json.loads(json.loads(out.stdout)["Statement"])
    assert statement["Condition"] == {"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::my-bucket"}}
    again = aws(
        server,
        "add-permission",
        "--function-name",
        name,
        "--statement-id",
        "s3",
        "--action",
        "lambda:InvokeFunction",
        "--principal",
        "s3.amazonaws.com",
        check=False,
    )
    assert again.returncode != 0 and "ResourceConflictException" in again.stderr
    policy = json.loads(
        json.loads(aws(server, "get-policy", "--function-name", name).stdout)["Policy"]
    )
    assert [s["Sid"] for s in policy["Statement"]] == ["s3"]
    lam.add_permission(
        FunctionName=name,
        Qualifier="live",
        StatementId="events",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
    )
    live = json.loads(lam.get_policy(FunctionName=name, Qualifier="live")["Policy"])
    assert live["Statement"][0]["Resource"].endswith(f":function:{name}:live")
    stale = lam.get_policy(FunctionName=name)["RevisionId"] + "x"
    try:
        lam.remove_permission(FunctionName=name, StatementId="s3", RevisionId=stale)
        raise AssertionError("a stale RevisionId was accepted")
    except lam.exceptions.PreconditionFailedException:
        pass
    aws(server, "remove-permission", "--function-name", name, "--statement-id", "s3")
    missing = aws(server, "get-policy", "--function-name", name, check=False)
    assert "ResourceNotFoundException" in missing.stderr


def test_function_url_end_to_end(server: Server, lam: Any) -> None:
    name = create(lam, {"app.py": ECHO}, name=unique("url"))
    created = lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    url = created["FunctionUrl"]
    assert url.startswith(server.url + "/lambda-url/")
    status, _, body = http(url + "hello")
    assert status == 403 and b"add-permission" in body
    lam.add_permission(
        FunctionName=name,
        StatementId="FunctionURLAllowPublicAccess",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    status, headers, body = http(
        url + "hello/world?a=1&a=2",
        data=b'{"k": "v"}',
        headers={"Content-Type": "application/json", "Cookie": "c=1; d=2"},
    )
    assert status == 200, body
    assert headers["x-seen"] == "/hello/world"
    assert headers["Set-Cookie"] == "session=1; HttpOnly"
    got = json.loads(body)
    event = got["event"]
    assert (event["rawPath"], event["rawQueryString"]) == ("/hello/world", "a=1&a=2")
    assert event["queryStringParameters"] == {"a": "1,2"}
    assert event["cookies"] == ["c=1", "d=2"]
    assert (event["body"], event["isBase64Encoded"]) == ('{"k": "v"}', False)
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["requestId"] == got["requestId"]
    # the same URL by host name, as <url-id>.lambda-url.<region>.localhost
    url_id = url.rstrip("/").rsplit("/", 1)[1]
    status, headers, _ = http(
        server.url + "/by-host", headers={"Host": f"{url_id}.lambda-url.us-east-1.localhost"}
    )
    assert status == 200 and headers["x-seen"] == "/by-host"
    status, headers, body = http(url + "bare")
    assert (status, body) == (200, b'"Hello, world!"')
    assert headers["Content-Type"] == "application/json"
    status, _, body = http(url + "fail")
    assert (status, body) == (502, b"Internal Server Error")
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    status, _, _ = http(url)
    assert status == 429


SAM_TEMPLATE = """
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources:
  Web:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: {prefix}-web
      Runtime: {runtime}
      Handler: app.handler
      CodeUri: src
      Tracing: Active
      FunctionUrlConfig:
        AuthType: NONE
      Events:
        Nightly:
          Type: Schedule
          Properties:
            Schedule: cron(0 3 * * ? *)
        Morning:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: rate(5 minutes)
        Upload:
          Type: S3
          Properties:
            Bucket: my-bucket
        GetItem:
          Type: Api
          Properties:
            Path: /items/{{id}}
            Method: get
            RestApiId: !Ref Shop
        Files:
          Type: HttpApi
          Properties:
            Path: /files/{{proxy+}}
            Method: ANY
  Shop:
    Type: AWS::Serverless::Api
    Properties:
      StageName: dev
      Variables:
        color: blue
      TracingEnabled: true
"""


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": str(ROOT / "src"),
        "NO_COLOR": "1",
    }
    env.pop("AWS_PROFILE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "lambdalet.cli", *args, "--endpoint", server.url],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{server.log_tail()}"
    return proc


def test_deploy_sets_up_urls_and_schedules_and_notes_the_rest(
    server: Server, tmp_path: Path
) -> None:
    prefix = unique("sam")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text(ECHO)
    (tmp_path / "template.yaml").write_text(SAM_TEMPLATE.format(prefix=prefix, runtime=HOST_PY))
    out = cli(server, "deploy", str(tmp_path), "--stack-name", prefix, "--json")
    result = json.loads(out.stdout)
    assert "note: Web: property Tracing is not acted on" in out.stderr
    assert "Web.Events.Upload (S3): event type S3 is not run by lambdalet" in out.stderr
    assert any("Tracing" in n for n in result["notes"])
    (url,) = result["urls"]
    status, headers, _ = http(url["url"] + "deployed")  # SAM's public permission was added
    assert status == 200 and headers["x-seen"] == "/deployed"
    assert (
        "note: Shop (AWS::Serverless::Api): property TracingEnabled is not acted on" in out.stderr
    )
    routes = {e["route"]: e for e in result["endpoints"]}
    assert set(routes) == {"GET /items/{id}", "ANY /files/{proxy+}"}
    item_url = routes["GET /items/{id}"]["url"].replace("{id}", "42")
    assert item_url == f"{server.url}/lambdalet/stacks/{prefix}/Shop/dev/items/42"
    status, headers, body = http(item_url + "?q=1")
    assert status == 200, body
    event = json.loads(body)["event"]
    assert (event["resource"], event["path"], event["httpMethod"]) == (
        "/items/{id}",
        "/items/42",
        "GET",
    )
    assert event["pathParameters"] == {"id": "42"} and event["stageVariables"] == {"color": "blue"}
    assert event["requestContext"]["stage"] == "dev" and event["queryStringParameters"] == {
        "q": "1"
    }
    status, _, body = http(item_url.replace("/items/42", "/nowhere"))
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})
    files_url = routes["ANY /files/{proxy+}"]["url"].replace("{proxy+}", "a/b.txt")
    status, headers, body = http(files_url, data=b"\x00\x01", headers={"Content-Type": "image/png"})
    assert status == 200, body
    event = json.loads(body)["event"]
    assert event["routeKey"] == "ANY /files/{proxy+}" and event["pathParameters"] == {
        "proxy": "a/b.txt"
    }
    assert event["isBase64Encoded"] is True
    status, _, body = http(files_url.replace("/files/a/b.txt", "/fail-nothing"))
    assert (status, json.loads(body)) == (404, {"message": "Not Found"})
    names = {s["Name"]: s for s in result["schedules"]}
    assert set(names) == {"WebNightly", "WebMorning"}
    assert names["WebNightly"]["NextFireTime"].endswith("T03:00:00Z")
    listed = json.loads(cli(server, "schedules", "--stack", prefix, "--json").stdout)["Schedules"]
    assert {s["Name"] for s in listed} == {"WebNightly", "WebMorning"}
    table = cli(server, "schedules", "--stack", prefix).stdout
    assert "WebNightly" in table and "cron(0 3 * * ? *)" in table
    # a redeploy without the events removes the schedules
    (tmp_path / "template.yaml").write_text(
        SAM_TEMPLATE.format(prefix=prefix, runtime=HOST_PY).split("      Events:")[0]
    )
    again = json.loads(
        cli(server, "deploy", str(tmp_path), "--stack-name", prefix, "--json").stdout
    )
    assert again["schedules"] == [] and again["endpoints"] == []
    status, _, _ = http(item_url)
    assert status == 404
    assert (
        json.loads(cli(server, "schedules", "--stack", prefix, "--json").stdout)["Schedules"] == []
    )
