#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: codis_ha
short_description: One idempotent check-and-promote pass over the server groups of a Codis cluster
version_added: "0.1.0"
description:
  - Reads the server groups from a Codis 2.x or 3.x dashboard, probes every Redis server in parallel, and for
    each group whose master is really down promotes the best live slave through the dashboard.
  - With Codis 3.x the dashboard's own polls of each server are one more opinion (a master the dashboard still
    reaches is not failed over without O(force)), and a group the dashboard shows promoting is skipped with the
    reason. With Redis Sentinel registered in the dashboard the pass stands aside (Sentinel fails the masters over
    and the dashboard follows it) and only reports. A slot migration does not put a failover off (the dashboard refuses a promote only while one
    migration batch executes, and the pass tries it again); the failover is reported with a warning.
  - The best slave is a live slave of the group that replicates from the failed master, is not loading
    or syncing and has a C(replica-priority) other than 0; the highest replication offset wins, then the
    lower priority, then the address.
  - After a promotion the other slaves are re-pointed to the new master through the dashboard, and a
    server shown C(offline) that is alive again is re-added as a slave (O(reuse_offline)).
  - Every action is verified by re-reading the dashboard and asking the Redis servers; a dashboard that
    answers an error after applying a promotion is handled by re-reading.
  - A server that refuses the credentials is not treated as down; the pass fails and changes nothing.
author:
  - codis.ha contributors (@codis-ha)
requirements:
  - redis (Python package, 4.x or newer)
  - requests (Python package, 2.25 or newer)
  - kazoo (Python package) with a ZooKeeper O(coordinator), etcd3gw (Python package) with an etcd one
attributes:
  check_mode:
    support: full
    description: Plans the pass and reports the actions it would take, with status C(planned).
  diff_mode:
    support: full
    description: Shows each group's servers and their types before and after.
options:
  dashboard_url:
    description: Base URL of the Codis dashboard, for example C(http://127.0.0.1:18087).
    type: str
    required: true
  codis_version:
    description:
      - Which dashboard API to speak. V(auto) asks the dashboard once per pass with C(GET /api/topom/model), which
        answers a model on Codis 3 and 404 on Codis 2.
      - V(2) is C(codis-config dashboard) (Codis 2.x); V(3) is C(codis-dashboard) (Codis 3.x, the topom API).
    type: str
    choices: [auto, "2", "3"]
    default: auto
  product_name:
    description:
      - The Codis 3 product name; the xauth token of every request is derived from it.
      - With O(codis_version=auto) it defaults to the name the dashboard reports.
    type: str
  product_auth:
    description:
      - The Codis 3 C(product_auth), the password of the cluster's codis-servers. Used for the probes when
        O(redis_password) is not set.
    type: str
  dashboard_timeout:
    description:
      - Seconds one dashboard request may take in all (connect, headers and the whole body), not per read.
      - Answers larger than 64 MiB are refused.
    type: float
    default: 5.0
  promote_timeout:
    description:
      - Seconds a promote request may take. A promote waits for every proxy to acknowledge; with a registered
        proxy that died, a Codis 2 dashboard holds the request about 30 s and then answers an error although it
        applied the promotion, so this is longer than O(dashboard_timeout). The pass deadline still caps it.
    type: float
    default: 40.0
  pass_timeout:
    description:
      - Seconds the whole pass may take. Every dashboard request and every verification wait is cut to what is
        left; an action that would start after the deadline is reported as not attempted.
      - Any finite number above 0 and up to 86400.
    type: float
    default: 60.0
  parallel_groups:
    description:
      - How many groups the pass carries out at once when several must change (a lost rack). The dashboard still
        gets one mutating call at a time (Codis 2 refuses a second caller while its lock is held); what overlaps is
        the verification of each promotion and re-point. From 1 to 256.
    type: int
    default: 8
  stale_lock_after:
    description:
      - Codis 2 only. The dashboard's coordinator lock lives in ZooKeeper as nodes that are not ephemeral, so a dashboard
        killed during a call leaves its lock, and every later change is refused (C(obtaining lock timed
        out)) until an operator runs C(codis-config action remove-lock).
      - Once the lock has refused every change a group needed for this many seconds, across passes (needs
        O(state_path)), the pass removes it the same way (C(GET /api/force_remove_locks)), reports a
        C(remove_stale_lock) action, and leaves the change to the next pass. The longest a call holds the lock on
        the real binaries is a promote waiting for its proxies, 30 to 45 s.
      - C(0) never removes it. From 0 to 86400.
    type: float
    default: 90.0
  coordinator:
    description:
      - Several watchers, one decision. The ZooKeeper or etcd that the Codis cluster already runs, as
        C(zookeeper://zk1:2181,zk2:2181/codis-ha) or C(etcd://etcd1:2379/codis-ha) (C(etcds://) for TLS); the path
        is where the watchers keep their observations and their lock.
      - Each pass publishes, per group, whether it judged the master down. A failover needs O(quorum) fresh
        observations (younger than O(observation_ttl) by the coordinator's clock) that the very master is down, and
        the pass that acts holds the cluster's lock for the whole act-and-verify, after reading and planning again
        under it. A pass that cannot get the lock reports which watcher holds it.
      - Coordinator unreachable means no change and a failed task. Needs C(kazoo) (ZooKeeper) or C(etcd3gw) (etcd).
      - Without it, this watcher decides alone, as before.
    type: str
  quorum:
    description:
      - How many watchers must see a master down before one of them fails it over. Needs O(coordinator); defaults
        to 2 with one. From 1 to 99.
    type: int
  observer_id:
    description: This watcher's name among the others. Letters, digits, C(.), C(_), C(-). Defaults to the host name.
    type: str
  observation_ttl:
    description:
      - Seconds an observation counts, by the coordinator's clock (a ZooKeeper node's mtime, an etcd lease's TTL).
        Longer than the watchers' interval, short enough that an old view does not count. From 1 to 3600.
    type: float
    default: 5.0
  coordinator_timeout:
    description:
      - Seconds of the ZooKeeper session or of the etcd lease that holds the lock; a watcher killed while it holds
        the lock loses it after this long, and the next pass finishes the job. Also caps connecting. From 1 to 600.
    type: float
    default: 10.0
  coordinator_username:
    description: ZooKeeper digest or etcd user; with O(coordinator_password).
    type: str
  coordinator_password:
    description: Its password.
    type: str
  coordinator_ca_path:
    description: CA file to verify the coordinator's TLS certificate; turns TLS on.
    type: path
  coordinator_cert_path:
    description: Client certificate for the coordinator; with O(coordinator_key_path).
    type: path
  coordinator_key_path:
    description: Private key of O(coordinator_cert_path).
    type: path
  validate_certs:
    description: Validate the dashboard's TLS certificate when O(dashboard_url) is https.
    type: bool
    default: true
  ca_path:
    description: CA bundle (PEM) to validate the dashboard's certificate with. Checked before the pass starts.
    type: path
  redis_username:
    description: ACL user name for the Redis servers (Redis 6 or newer).
    type: str
  redis_password:
    description: Password for the Redis servers (C(requirepass) or the ACL user's password).
    type: str
  redis_tls:
    description: Connect to the Redis servers with TLS.
    type: bool
    default: false
  redis_tls_ca_path:
    description: CA certificate to validate the Redis servers with.
    type: path
  redis_tls_cert_path:
    description: Client certificate for Redis TLS; goes with O(redis_tls_key_path).
    type: path
  redis_tls_key_path:
    description: Client key for Redis TLS; goes with O(redis_tls_cert_path).
    type: path
  redis_tls_validate_certs:
    description: Validate the Redis servers' certificates against O(redis_tls_ca_path).
    type: bool
    default: true
  probe_timeout:
    description: Seconds one probe of one Redis server may take (connect, and then the answer).
    type: float
    default: 1.0
  probe_attempts:
    description: A server is down only after this many failed probes in a row.
    type: int
    default: 2
  probe_interval:
    description:
      - Seconds from the start of one probe of a server to the start of the next (its next attempt). After a probe
        that timed out (it waited O(probe_timeout)) the next one starts at once.
    type: float
    default: 0.2
  probe_concurrency:
    description:
      - How many servers are probed at once (one thread each, only as many as there are servers). A hung server
        holds its thread for the whole probe budget, so more hung servers than this make the pass wait a second
        budget (docs/benchmarks.md). From 1 to 4096.
    type: int
    default: 1024
  repoint_slaves:
    description: Re-point slaves that do not replicate from their group's master (after a promotion,
      or stray ones) by re-adding them as slaves through the dashboard.
    type: bool
    default: true
  reuse_offline:
    description:
      - Re-add a server shown C(offline) that is alive again as a slave of the current master.
      - Its own writes (a returning old master's) are discarded by the full sync; the action's reason
        reports its offset and key count first.
    type: bool
    default: true
  groups:
    description: Only look at these group ids. All groups when omitted.
    type: list
    elements: int
  verify_timeout:
    description: Seconds to wait for a promoted or re-pointed server to show its new role.
    type: float
    default: 10.0
  state_path:
    description:
      - File where passes remember, per group, the last master seen alive with its offset, replication
        history and key count, since when the master is seen down, and the last failover. Written atomically
        with mode 0600.
      - With it, a master restarted without its data while the dashboard still lists it is recognised (it
        answers with another replication history than the recorded one while a slave still holds that one); the
        slave holding the most of it is promoted before a full sync copies the empty data set, and writes no
        server holds any more are named and fail the task.
      - A lock file beside it (O(state_path) plus C(.lock)) keeps two passes on this host apart; the
        second one reports "another pass is running" and does nothing.
      - Needed by O(down_after), O(min_failover_interval), O(max_data_loss_bytes) and the restarted-master rule.
      - Without it (or on a state file's first pass) no pass knows when it last saw a master alive, so a failover
        is refused as blind when every slave lost its link more than O(stale_margin) seconds ago, since they may
        have been cut off that long before the master died. A playbook run now and then without O(state_path) may
        so leave a group down (the task fails and says why); O(force) takes the risk.
    type: path
  down_after:
    description: Seconds a master must have been seen down by passes before it is failed over.
      0 fails over on the first pass that sees it down. Needs O(state_path).
    type: float
    default: 0.0
  min_failover_interval:
    description:
      - A failover of a group within this many seconds of its last one is reported as flapping (a warning, and the
        group's reason says so). Uses O(state_path).
      - It never refuses the failover; a master judged down is failed over however recently the group last failed
        over, so that no group is left without a master by this rule.
    type: float
    default: 300.0
  stale_margin:
    description: A slave whose link to the master went down more than this many seconds before the
      master did holds old data and is not a candidate unless O(force).
    type: float
    default: 10.0
  max_data_loss_bytes:
    description: Refuse a candidate that lags the failed master's last known offset (from O(state_path))
      by more than this many bytes, unless O(force). No limit when omitted.
    type: int
  max_failovers_per_pass:
    description: When more groups than this would fail over in one pass, none is (many masters down at
      once usually means this host is cut off), unless O(force). No limit when omitted.
    type: int
  max_ping_period:
    description:
      - Keep every live master's C(repl-ping-replica-period) at or below this many seconds (C(CONFIG SET
        repl-ping-slave-period), the name Redis 3.2 and 7 both take), reported as a C(set_ping_period) action and
        in the diff; check mode only plans it. V(0) leaves the masters' period alone.
      - A frozen or powered-off master is told from a live one only by its slaves' silence, which a live idle
        master breaks only once a period (Redis's default 10 s); at 1 s its silence is evidence within about two
        seconds. The price is one 14-byte PING a second in each master's replication stream.
      - The setting is not written to the server's config file; a restarted server is set again by the next pass.
      - The role sets it to V(1) unless told otherwise.
    type: int
    default: 0
  remove_dead_proxies:
    description:
      - Codis 3. A proxy that the dashboard still lists but that is dead (the dashboard's fresh poll of it failed
        and its admin port refuses a connection from this host) or hung (the poll failed and its admin port takes
        a connection but answers nothing within 2 s) makes every promote fail and leaves the group C(promoting).
        With this on, such a proxy is removed through the dashboard (forced, as Codis 3's own codis-ha does) and
        reported, before the first promotion of the pass.
      - The dashboard waits about a minute for a hung proxy before it lets go, its whole API held meanwhile; the
        removal is sent once and the promotion follows in the first pass that can read the groups again.
      - With this off, no group is failed over while a dead or hung proxy is listed; the reason says so.
    type: bool
    default: true
  force:
    description: Override the refusals of O(down_after), O(stale_margin), O(max_data_loss_bytes) and
      O(max_failovers_per_pass). A master that a slave still sees is never
      failed over, and the candidate rules (alive, replicating from the master, priority) still hold.
    type: bool
    default: false
notes:
  - The pass is idempotent; run it from a timer (see the role C(codis.ha.codis_ha)) or a playbook.
  - Every number option must be finite and in range; C(nan) and C(inf) are refused before anything is done.
  - A group that lists a malformed address, lists one server twice under two spellings, or shares a server with
    another group, or whose server answers something the pass does not understand, is skipped with the reason;
    the other groups are handled as usual.
  - Supports Codis 2.x dashboards (C(codis-config dashboard)).
"""

EXAMPLES = r"""
- name: Fail over every Codis group whose master is down
  codis.ha.codis_ha:
    dashboard_url: http://127.0.0.1:18087
    redis_password: "{{ vault_codis_redis_password }}"

- name: A Codis 3.x cluster
  codis.ha.codis_ha:
    dashboard_url: http://codis-dashboard:18080
    codis_version: "3"
    product_name: codis-prod
    product_auth: "{{ vault_codis_product_auth }}"

- name: Only plan, and show the groups before and after
  codis.ha.codis_ha:
    dashboard_url: http://127.0.0.1:18087
    groups: [1, 2]
  check_mode: true
  diff: true
  register: plan

- name: Show why each group was (or was not) failed over
  ansible.builtin.debug:
    msg: "{{ plan.groups | map(attribute='reason') | list }}"
"""

RETURN = r"""
actions:
  description: What the pass did, or would do in check mode, in order.
  returned: always
  type: list
  elements: dict
  contains:
    group:
      description: Group id.
      type: int
    action:
      description:
        - C(promote), C(repoint), C(readd), C(remove_proxy) (Codis 3, a dead or hung proxy removed before the
          promotion), C(set_ping_period), or C(remove_stale_lock) (Codis 2, see O(stale_lock_after)).
      type: str
    server:
      description: The server acted on.
      type: str
    previous_master:
      description: The failed master, for a promotion.
      type: str
    reason:
      description: Why, in one sentence.
      type: str
    status:
      description: C(planned) (check mode), C(done) or C(failed).
      type: str
    detail:
      description: What verification found.
      type: str
  sample:
    - group: 1
      action: promote
      server: 127.0.0.1:6381
      previous_master: 127.0.0.1:6380
      reason: "master 127.0.0.1:6380 is down (2 failed probe(s)); 127.0.0.1:6381 has the highest offset"
      status: done
      detail: dashboard lists 127.0.0.1:6381 as master and it answers role master at offset 4242
groups:
  description: One entry per group looked at, with each server's state and the decision taken.
  returned: always
  type: list
  elements: dict
  sample:
    - id: 1
      master: 127.0.0.1:6381
      decision: failover
      reason: master 127.0.0.1:6380 is down
      servers:
        - addr: 127.0.0.1:6380
          type: master
          alive: false
          status: down
skipped_groups:
  description: Groups the pass refused to touch, each with the reason.
  returned: always
  type: list
  elements: dict
  sample:
    - group: 3
      reason: 2 servers have type master; an operator must fix the group
msg:
  description: One human sentence about the pass.
  returned: always
  type: str
  sample: 1 promote done, 1 repoint done; 2 of 3 group(s) healthy.
pass_seconds:
  description: How long the pass took.
  returned: always
  type: float
  sample: 0.042
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.codis.ha.plugins.module_utils._front import INTERNAL_ERROR, checked_pass, secrets_of
from ansible_collections.codis.ha.plugins.module_utils._options import REQUIRED_TOGETHER, argument_spec

__all__ = ["INTERNAL_ERROR", "main"]


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_together=REQUIRED_TOGETHER)
    # user:password@ in the URL: never echoed, not even in `invocation`
    module.no_log_values.update(secrets_of(module.params))
    outcome = checked_pass(module.params, check_mode=module.check_mode, diff=module._diff)
    for warning in outcome.warnings:
        module.warn(warning)
    if outcome.failed_msg:
        module.fail_json(msg=outcome.failed_msg, **{k: v for k, v in outcome.result.items() if k != "msg"})
    module.exit_json(**outcome.result)


if __name__ == "__main__":
    main()
