"""Drives Hetzner's official Python client (hcloud on PyPI) through Berth's cloud surface.

Run by test/integration/hetzner-official-clients.test.ts against the local cloud:
HCLOUD_ENDPOINT, HCLOUD_TOKEN, and HCLOUD_CHECK (JSON: prefix, publicKey, userData, describeTypes,
unavailable, removed). Prints one JSON document of what the client saw; the same document as
hcloud-go/main.go prints, so the test holds both to one expectation. A client error that is not an
expected one (the client could not read an answer) ends the run with a traceback and exit status 1.
"""

from __future__ import annotations

import json
import os
import sys

from hcloud import APIException, Client
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.server_types import ServerType
from hcloud.servers import Server


def api_error(call) -> APIException:
    """The API error a call fails with; a call that succeeds is a failed expectation."""
    try:
        call()
    except APIException as err:
        return err
    raise AssertionError("the call was expected to fail")


def error_code(call) -> str:
    return str(api_error(call).code)


def epoch(value) -> int | None:
    return None if value is None else int(value.timestamp())


def main() -> None:
    check = json.loads(os.environ["HCLOUD_CHECK"])
    prefix = check["prefix"]
    client = Client(
        token=os.environ["HCLOUD_TOKEN"],
        api_endpoint=os.environ["HCLOUD_ENDPOINT"],
        application_name="berth-check",
        poll_interval=0.1,
    )
    seen: dict = {}

    # The first call meets an injected 429: the client retries only on the code rate_limit_exceeded.
    seen["locations"] = sorted(loc.name for loc in client.locations.get_all())

    types = {t.name: t for t in client.server_types.get_all()}
    seen["serverTypes"] = {
        name: None if name not in types else {
            "disk": types[name].disk,
            "architecture": types[name].architecture,
            "storageType": types[name].storage_type,
            "locations": {
                loc.location.name: {
                    "available": loc.available,
                    "recommended": loc.recommended,
                    "deprecation": None if loc.deprecation is None else {
                        "announced": epoch(loc.deprecation.announced),
                        "unavailableAfter": epoch(loc.deprecation.unavailable_after),
                    },
                }
                for loc in types[name].locations
            },
        }
        for name in check["describeTypes"]
    }

    image = client.images.get_by_name_and_architecture("debian-12", "x86")
    seen["image"] = {"name": image.name, "type": image.type}

    key = client.ssh_keys.create(name=f"{prefix}-key", public_key=check["publicKey"], labels={"berth-check": prefix})
    seen["sshKey"] = {
        "name": key.name,
        "labels": key.labels,
        "byName": client.ssh_keys.get_by_name(f"{prefix}-key").id == key.id,
        "bySelector": [k.name for k in client.ssh_keys.get_all(label_selector=f"berth-check={prefix}")],
        "duplicate": error_code(lambda: client.ssh_keys.create(name=f"{prefix}-key", public_key=check["publicKey"])),
    }

    labels = {"berth-customer": prefix, "berth-check": "yes"}
    created = client.servers.create(
        name=f"{prefix}-server",
        server_type=ServerType(name="cx33"),
        image=Image(name="debian-12"),
        location=Location(name="fsn1"),
        ssh_keys=[key],
        labels=labels,
        user_data=check["userData"],
    )
    created.action.wait_until_finished()
    for action in created.next_actions:
        action.wait_until_finished()
    server = client.servers.get_by_id(created.server.id)

    def state() -> dict:
        s = client.servers.get_by_id(server.id)
        return {"status": s.status, "serverType": s.server_type.name, "disk": s.primary_disk_size}

    seen["server"] = {
        **state(),
        "location": server.location.name,
        "labels": server.labels,
        "image": server.image.name,
        "nextActions": len(created.next_actions),
        "bySelector": [s.name for s in client.servers.get_all(label_selector=f"berth-customer={prefix}")],
        "duplicate": error_code(lambda: client.servers.create(
            name=f"{prefix}-server", server_type=ServerType(name="cx33"), image=Image(name="debian-12"))),
    }

    power = {}
    client.servers.shutdown(server).wait_until_finished()
    power["shutdown"] = state()["status"]
    client.servers.power_on(server).wait_until_finished()
    power["poweron"] = state()["status"]
    client.servers.power_off(server).wait_until_finished()
    power["poweroff"] = state()["status"]
    seen["power"] = power

    change = {}
    change["downgrade"] = error_code(lambda: client.servers.change_type(server, ServerType(name="cx23"), upgrade_disk=False))
    client.servers.change_type(server, ServerType(name="cx43"), upgrade_disk=False).wait_until_finished()
    change["upgradeKeepingDisk"] = state()
    client.servers.change_type(server, ServerType(name="cx33"), upgrade_disk=False).wait_until_finished()
    change["backWithinDisk"] = state()
    seen["changeType"] = change

    snapshot = client.servers.create_image(server, description=f"{prefix} snapshot", type="snapshot", labels={"berth-check": prefix})
    snapshot.action.wait_until_finished()
    image_now = client.images.get_by_id(snapshot.image.id)
    too_small = api_error(lambda: client.servers.create(
        name=f"{prefix}-small", server_type=ServerType(name="cx23"), image=Image(id=snapshot.image.id)))
    seen["snapshot"] = {
        "type": image_now.type,
        "status": image_now.status,
        "diskSize": image_now.disk_size,
        "labels": image_now.labels,
        "createdFrom": image_now.created_from.name,
        "smallerType": str(too_small.code),
        "smallerTypeMessage": too_small.message,
    }

    seen["errors"] = {
        "notFound": error_code(lambda: client.servers.get_by_id(2_000_000_000)),
        "unavailable": error_code(lambda: client.servers.create(
            name=f"{prefix}-unavailable", server_type=ServerType(name=check["unavailable"]["serverType"]),
            image=Image(name="debian-12"), location=Location(name=check["unavailable"]["location"]))),
        "removed": error_code(lambda: client.servers.create(
            name=f"{prefix}-removed", server_type=ServerType(name=check["removed"]), image=Image(name="debian-12"))),
    }

    client.images.delete(Image(id=snapshot.image.id))
    client.servers.delete(Server(id=server.id)).wait_until_finished()
    client.ssh_keys.delete(key)
    seen["deleted"] = {
        "server": error_code(lambda: client.servers.get_by_id(server.id)),
        "snapshot": error_code(lambda: client.images.get_by_id(snapshot.image.id)),
        "sshKey": error_code(lambda: client.ssh_keys.get_by_id(key.id)),
    }

    json.dump(seen, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
