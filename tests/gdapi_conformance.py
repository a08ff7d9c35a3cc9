"""Drive the cluster API through Rancher's own Python client (gdapi-python,
from PyPI), which builds every method from the server's schemas: the
conformance half of tests/cluster_gdapi.rs.

Usage: python gdapi_conformance.py URL IMAGE
Exits non-zero with the failing step on the first mismatch.
"""

import os
import sys
import time

import gdapi
import requests

URL, IMAGE = sys.argv[1], sys.argv[2]
# The server is secure by default: the harness hands the admin credentials
# down in the environment (as users do with RANCHER_ACCESS_KEY/SECRET_KEY).
AUTH = (os.environ.get("RANCHER_ACCESS_KEY", ""), os.environ.get("RANCHER_SECRET_KEY", ""))
STEP = ["start"]
T0 = time.time()


def step(name):
    STEP[0] = name
    print("[%6.1fs] %s" % (time.time() - T0, name), flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError("%s: %s" % (STEP[0], what))


def wait(what, fn, timeout=90):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError("%s: timed out waiting for %s (last %r)" % (STEP[0], what, last))


def raw(url):
    r = requests.get(url, headers={"Accept": "application/json"}, auth=AUTH)
    check(r.status_code == 200, "GET %s answered %s" % (url, r.status_code))
    return r.json()


HTTPD = ("/bin/busybox mkdir -p /www && echo ok > /www/index.html && "
         "exec /bin/busybox httpd -f -p 80 -h /www")

step("client from the project's schemas")
client = gdapi.Client(url=URL + "/v2-beta/projects/1a5/schemas",
                      access_key=AUTH[0], secret_key=AUTH[1])
for m in ["create_stack", "list_stack", "create_service", "list_service",
          "update_by_id_service", "list_load_balancer_service", "list_dns_service",
          "list_external_service", "list_container", "list_instance",
          "create_container", "list_host", "create_registration_token",
          "create_api_key", "by_id_service"]:
    check(hasattr(client, m), "the client has no %s" % m)
# gdapi's RestObject lists were written for Python 2 (len()/[] come from
# __getattr__); iterating works on both.
hosts = list(client.list_host(agentState="active"))
check(len(hosts) == 3, "3 active hosts, got %d" % len(hosts))

step("create a stack and a service in Rancher's shapes")
stack = client.create_stack(name="gd", description="gdapi conformance")
check(stack.type == "stack", stack.type)
stack = wait("stack active", lambda: (lambda s: s if s.state == "active" else None)(client.reload(stack)))
try:
    client.create_service(name="bad-", stackId=stack.id, launchConfig={"imageUuid": "docker:" + IMAGE})
    check(False, "a name ending in '-' was accepted")
except gdapi.ApiError as e:
    check(e.error.status == 422 and e.error.code == "InvalidCharacters", str(e.error))
svc = client.create_service(
    name="web", stackId=stack.id, scale=2,
    metadata={"tier": "web", "owner": {"team": "a"}},
    launchConfig={
        "imageUuid": "docker:" + IMAGE,
        "command": ["/bin/sh", "-c", HTTPD],
        "environment": {"VERSION": "v1"},
        "labels": {"io.rancher.scheduler.affinity:container_label_soft_ne":
                   "io.rancher.stack_service.name=gd/web"},
        "dataVolumes": ["/data", "gdvol:/vol", "/tmp:/hosttmp:ro"],
        "healthCheck": {"port": 80, "requestLine": "", "interval": 500,
                        "responseTimeout": 500, "healthyThreshold": 2,
                        "unhealthyThreshold": 3, "strategy": "recreateOnQuorum",
                        "recreateOnQuorumStrategyConfig": {"quorum": 1}},
    })
check(svc.type == "service", svc.type)
check(svc.metadata.tier == "web", "metadata on create")
check(svc.launchConfig.version == "0", "first launchConfig.version")
check(svc.launchConfig.healthCheck.strategy == "recreateOnQuorum", "strategy shown")
check(svc.launchConfig.healthCheck.recreateOnQuorumStrategyConfig.quorum == 1, "quorum shown")
check(svc.launchConfig.healthCheck.requestLine is None, "TCP check")
check(list(svc.launchConfig.dataVolumes) == ["/data", "gdvol:/vol", "/tmp:/hosttmp:ro"], "dataVolumes")

step("activate; the TCP-checked containers turn healthy")
svc = wait("service inactive", lambda: (lambda s: s if s.state == "inactive" else None)(client.reload(svc)))
svc = svc.activate()


def containers(state="running"):
    return [c for c in client.list_container(serviceId=svc.id, removed_null=True, limit=100)
            if state is None or c.state == state]



def healthy(n):
    cs = containers()
    return cs if len(cs) == n and all(c.healthState == "healthy" for c in cs) else None


wait("service active", lambda: client.reload(svc).state == "active")
cs = wait("2 healthy containers", lambda: healthy(2))
check(all(c.startCount == 1 for c in cs), "startCount after the first start: %r" % [c.startCount for c in cs])
check(all(c.healthCheck.strategy == "recreateOnQuorum" for c in cs), "container healthCheck shape")
check(all("/tmp:/hosttmp:ro" in list(c.dataVolumes) for c in cs), "container dataVolumes")

step("update scale through the client")
svc = client.update(svc, scale=3)
check(svc.scale == 3, "scale 3")
wait("3 healthy containers", lambda: healthy(3))

step("in-service upgrade with the generated action method")
lc = raw(svc.links.self)["launchConfig"]
lc["environment"]["VERSION"] = "v2"
svc = client.reload(svc)
svc = svc.upgrade_action(inServiceStrategy={"launchConfig": lc, "batchSize": 2,
                                            "intervalMillis": 100, "startFirst": False})
check(svc.state in ("upgrading", "upgraded"), svc.state)
svc = wait("upgraded", lambda: (lambda s: s if s.state == "upgraded" else None)(client.reload(svc)), 120)
check(svc.launchConfig.version not in (None, "0"), "a new launchConfig.version")
check(svc.previousLaunchConfig.version == "0", "previousLaunchConfig.version")
check(svc.upgrade.inServiceStrategy.previousLaunchConfig.environment.VERSION == "v1",
      "upgrade.inServiceStrategy.previousLaunchConfig")
check(svc.upgrade.inServiceStrategy.batchSize == 2, "batchSize kept")
svc = svc.finishupgrade()
svc = wait("active after finishupgrade",
           lambda: (lambda s: s if s.state == "active" else None)(client.reload(svc)), 120)
cs = wait("3 healthy v2 containers", lambda: healthy(3), 120)
check(all(c.environment.VERSION == "v2" for c in cs), "v2 everywhere")

step("upgrade again, then rollback")
lc = raw(svc.links.self)["launchConfig"]
v2version = lc["version"]
lc["environment"]["VERSION"] = "v3"
svc = svc.upgrade_action(inServiceStrategy={"launchConfig": lc, "batchSize": 3, "intervalMillis": 100})
svc = wait("upgraded to v3", lambda: (lambda s: s if s.state == "upgraded" else None)(client.reload(svc)), 120)
svc = svc.rollback()
svc = wait("active after rollback",
           lambda: (lambda s: s if s.state == "active" else None)(client.reload(svc)), 120)
check(svc.launchConfig.environment.VERSION == "v2", "launchConfig restored")
check(svc.launchConfig.version == v2version, "the v2 version back")
cs = wait("3 healthy v2 containers after rollback",
          lambda: (lambda cs: cs if cs and all(c.environment.VERSION == "v2" for c in cs) else None)(healthy(3)),
          120)

step("rolling restart through the client")
before = dict((c.id, c.startCount) for c in cs)
svc = svc.restart(rollingRestartStrategy={"batchSize": 2, "intervalMillis": 100})
svc = wait("active after restart",
           lambda: (lambda s: s if s.state == "active" else None)(client.reload(svc)), 120)


def restarted():
    now = dict((c.id, c.startCount) for c in containers())
    return now if set(now) == set(before) and all(now[i] == before[i] + 1 for i in now) else None


wait("every container started once more", restarted, 120)

step("list with filters and follow pagination")
full = list(client.list_container(name_like="gd-web-%", limit=100))
check(len(full) >= 3, "containers by name_like: %d" % len(full))
page = client.list_container(name_like="gd-web-%", limit=2)
check(page.pagination.next is not None and "name_like=gd-web-%25" in page.pagination.next,
      "next link encoded: %r" % page.pagination.next)
names = []
while True:
    names += [c.name for c in page]
    if page.pagination.next is None:
        break
    page = page.next()
check(sorted(names) == sorted(c.name for c in full), "pages add up to the list")
newest = list(client.list_container(sort="created", order="desc", limit=1))[0]
check(newest.created >= full[0].created, "sort by created desc")
check(len(list(client.list_service(name_like="w%", stackId=stack.id))) == 1, "service filters")
check(len(list(client.list_service(name_ne="web", stackId=stack.id))) == 0, "name_ne")

step("/v1: a stack is an environment")
v1 = gdapi.Client(url=URL + "/v1/projects/1a5/schemas",
                  access_key=AUTH[0], secret_key=AUTH[1])
check(hasattr(v1, "list_environment") and hasattr(v1, "create_environment"), "v1 environment methods")
envs = list(v1.list_environment(name="gd"))
check(len(envs) == 1 and envs[0].type == "environment", "the stack as an environment")
sv = list(envs[0].services())
check([s.name for s in sv] == ["web"], "environment services link")
check(sv[0].environmentId == stack.id, "environmentId")
env2 = v1.create_environment(name="gd-v1")
check(env2.type == "environment", env2.type)
s2 = v1.create_service(name="one", environmentId=env2.id,
                       launchConfig={"imageUuid": "docker:" + IMAGE, "command": ["sleep", "60"]})
check(s2.environmentId == env2.id, "v1 create with environmentId")
for name, url in raw(envs[0].links.self)["links"].items():
    raw(url)

step("deactivate and remove")
svc = svc.deactivate()
wait("inactive", lambda: client.reload(svc).state == "inactive", 60)
client.delete(stack)
client.delete(env2)
wait("stack removed", lambda: client.by_id_stack(stack.id).state == "removed", 60)
gone = wait("containers removed",
            lambda: (lambda cs: cs if cs and all(c.state in ("removed", "purged") for c in cs) else None)(
                list(client.list_container(serviceId=svc.id, limit=100))), 60)
print("gdapi conformance ok: %d containers seen, %.1fs" % (len(gone), time.time() - T0), flush=True)
