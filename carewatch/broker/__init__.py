"""The registry drives the MQTT broker's access control (Mosquitto's dynamic security plugin).

- ``roles``: who may publish and read what (one role per device, per caregiver app, per service);
- ``model`` / ``plan``: pure values and the planner that turns registry vs broker into commands;
- ``dynsec``: the ``$CONTROL/dynamic-security/v1`` client;
- ``sync``: ``carewatch broker sync`` (whole broker) and ``apply`` (a few logins, after a commit);
- ``live``: what the API calls after a commit, with misses recorded and retried;
- ``dynsec_file``: the plugin's file written from the registry's hashes (restores passwords too);
- ``endpoints``: each service's broker URL and these objects, from settings.

docs/operations.md, "Security", describes the whole design and the threat model.
"""
