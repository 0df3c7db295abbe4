"""The node agent, and the server's side of talking to it.

On a GPU machine (`sparkplane agent`):
    hardware.py, nvml.py, sysmem.py   what the machine has: GPUs (NVML), unified memory, CPU, disk
    models_dir.py                     model files in the models folder, with planner facts
    engines.py                        how each engine is started (command templates)
    logfile.py, process.py            one engine process: rotating log, health wait, restarts
    service.py                        the agent's own API (the server runs and stops engines)
    client.py, runner.py              joining the server and heartbeats

On the server:
    credentials.py                    join tokens, node and agent keys
    store.py                          nodes, tokens and deployments in the database
    placement.py                      where a model fits (through the planner)
    link.py                           calls to an agent's API
    control.py                        joins, heartbeats, deployments as devices, lost nodes
    protocol.py                       the documents both sides exchange
"""
