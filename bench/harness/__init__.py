"""Parts the whole-system benchmarks share: real services on spare loopback ports, ``carewatch run`` as a
subprocess, a device fleet that remembers every PUBACK, and the caregivers' webhook in its own process.

- ``services``: a private PostgreSQL (initdb/pg_ctl into a temporary directory), a Mosquitto with
  carewatch's configuration and persistence (restartable with any signal), a TCP proxy that can cut the
  network between everyone and the broker;
- ``node``: ``carewatch run`` in its own process group, with its ingest and dispatcher children;
- ``fleet``: meters and incidents over MQTT QoS 1 with persistent sessions, the incidents from the
  simulator's ground truth (``simulator.scenarios``);
- ``receiver``: the signed-webhook receiver (optionally slow) in a child process, and provisioning.

Nothing here touches the machine's shared servers. bench/faults.py, bench/failover.py and
bench/alert_latency.py use them.
"""
