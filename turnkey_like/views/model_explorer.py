"""The dataflow graph in Google's Model Explorer (``tk view``), served on localhost, offline.

Model Explorer (``pip install ai-edge-model-explorer``) is a web app for large graphs; its Python
package serves it from a local Flask server with every script, style sheet and icon inside the
package, so it needs no network at view time (its fonts fall back to local ones, and its "new
version" check fails quietly offline). It takes any graph through its graph-building API
(``model_explorer.graph_builder``): tk writes the characterization's op rows as a graph JSON file
(one node per row, id ``n<row index>``; edges from ``OpRow.producers``; the node's namespace is its
module path with ``/`` between levels, so the graph nests and collapses by module), which Model
Explorer's built-in JSON adapter loads. Untraceable models work: nothing is traced or exported.

tk's per-node figures come as node-data overlays (``model_explorer.node_data_builder``), one file
each, chosen in Model Explorer's side panel: MACs, bytes (read + written), arithmetic intensity
(FLOPs/byte), bound (coloured as in the pictures, ``views.graph.BOUND_COLOURS``), roofline time (µs),
the roofline time of the compute-bound and of the memory-bound ops (µs; 0 for the others), and with
a per-layer run (``--per-layer``) each op's measured time (µs per iteration, ``PerLayerResult.op_ms``).

Model Explorer sums an overlay over a layer (its side panel's "sum"), and draws a layer's bar from
its ops' colours *by op count*. So the figures a layer is judged by are the additive ones: a layer's
roofline time, compute-bound and memory-bound roofline time and measured time are the sums of its
ops'. The intensity overlay hides "sum" and "avg" (an op count average of ratios means nothing: a
layer's intensity is its FLOPs ÷ its bytes, in its attributes), and the bound overlay shows no
expanded count summary. Each layer's attributes (``groupNodeAttributes``, side panel) give its
roll-up from the record's ``ModuleRow``: MACs, FLOPs, bytes, intensity, roofline time, the share of
its roofline time that is compute-bound, and with a per-layer run its measured time and % of roof.
Each node's attributes also hold its op, class, FLOPs (1 MAC = 2 FLOPs), roofline time, fusion group
and number (``OpRow.index``, as ``tk explore`` numbers it), and each output its shape and dtype.
"""

from __future__ import annotations

import json
import socket
from dataclasses import asdict
from pathlib import Path

from turnkey_like.errors import TkError
from turnkey_like.files import write_atomic
from turnkey_like.records import Characterization, PerLayerResult
from turnkey_like.report.measured import ms, percent
from turnkey_like.report.text import short_op
from turnkey_like.units import format_bytes, format_intensity, format_seconds, si
from turnkey_like.views.graph import BOUND_COLOURS

#: Gradient of the numeric overlays, low to high (Model Explorer interpolates between stops).
GRADIENT = ({"stop": 0, "bgColor": "#f7fbff"}, {"stop": 0.5, "bgColor": "#6baed6"}, {"stop": 1, "bgColor": "#08306b"})
#: The overlays tk adds, by the key in their file names (``<name>.<key>.nodedata.json``); ``measured``
#: only with a per-layer run.
OVERLAYS = ("macs", "bytes", "arithmetic_intensity", "bound", "roofline_time", "compute_bound_time",
            "memory_bound_time", "measured")
_INSTALL = "pip install ai-edge-model-explorer (or pip install 'turnkey_like[view]')"


def require():
    try:
        import model_explorer
        from model_explorer import graph_builder, node_data_builder
    except ImportError as e:
        raise TkError(f"tk view needs Google's Model Explorer, which is not installed ({_INSTALL})") from e
    return model_explorer, graph_builder, node_data_builder


def _layer_attributes(char: Characterization, per_layer: PerLayerResult | None) -> dict[str, dict[str, str]]:
    """Per layer (namespace ``a/b``), its roll-up for the side panel: the record's ``ModuleRow``
    figures, the share of its roofline time in compute-bound ops (the sum over its ops, the one
    figure summed here), and with ``per_layer`` its measured time and % of roof."""
    compute: dict[str, float] = {}
    for r in char.rows:
        if r.bound == "compute-bound":
            parts = r.module_path.split(".") if r.module_path else []
            for depth in range(len(parts) + 1):
                key = ".".join(parts[:depth])
                compute[key] = compute.get(key, 0.0) + r.roofline_time_s
    out = {}
    for m in char.modules:
        attrs = {"class": m.class_name, "MACs": si(m.macs), "FLOPs (1 MAC = 2 FLOPs)": si(m.flops),
                 "bytes": format_bytes(m.bytes), "arithmetic intensity (FLOPs/byte)": format_intensity(m.arithmetic_intensity),
                 f"roofline time ({char.hardware.name})": format_seconds(m.roofline_time_s),
                 "compute-bound share of roofline time": percent(compute.get(m.path, 0.0) / m.roofline_time_s)
                 if m.roofline_time_s else "-"}
        seen = per_layer.module_measure(m.path) if per_layer is not None else None
        if seen is not None:
            attrs["measured (ms per iteration)"] = ms(seen.measured_ms) or "-"
            attrs["% of roof"] = percent(seen.efficiency, seen.noisy) or "-"
        out[m.path.replace(".", "/")] = attrs
    return out


def graph_json(char: Characterization, graph_id: str = "tk", per_layer: PerLayerResult | None = None) -> dict:
    """The graph of ``char`` as Model Explorer graph JSON: one ``GraphCollection`` (the form its
    JSON adapter loads from a file) holding one graph, built with ``model_explorer.graph_builder``
    (node ids ``n<row index>``, namespaces = module paths, each layer's roll-up in its attributes;
    with ``per_layer``, measured times)."""
    _, gb, _ = require()
    groups = char.fusion.row_groups
    nodes = []
    for r in char.rows:
        attrs = {"op": r.op, "module": r.module_path or "(model)", "class": r.module_class,
                 "MACs": si(r.macs), "FLOPs (1 MAC = 2 FLOPs)": si(r.flops), "bytes": format_bytes(r.bytes),
                 "arithmetic intensity (FLOPs/byte)": format_intensity(r.arithmetic_intensity),
                 "bound": r.bound, f"roofline time ({char.hardware.name})": format_seconds(r.roofline_time_s),
                 "fusion group": str(groups[r.index]) if groups else "?", "node": str(r.index)}
        if per_layer is not None and per_layer.op_ms:
            attrs["measured (ms per iteration)"] = ms(per_layer.op_time(r.index), per_layer.op_noisy(r.index))
        nodes.append(gb.GraphNode(
            id=f"n{r.index}", label=short_op(r.op), namespace=r.module_path.replace(".", "/"),
            attrs=[gb.KeyValue(key=k, value=v) for k, v in attrs.items()],
            incomingEdges=[gb.IncomingEdge(sourceNodeId=f"n{p}", targetNodeInputId=str(k))
                           for k, p in enumerate(r.producers)],
            outputsMetadata=[gb.MetadataItem(id=str(k), attrs=[gb.KeyValue(key="shape", value=str(list(s))),
                                                               gb.KeyValue(key="dtype", value=r.dtype)])
                             for k, s in enumerate(r.output_shapes)],
        ))
    graph = gb.Graph(id=graph_id, nodes=nodes, groupNodeAttributes=_layer_attributes(char, per_layer))
    return asdict(gb.GraphCollection(label=graph_id, graphs=[graph]))


def node_data(char: Characterization, graph_id: str = "tk", per_layer: PerLayerResult | None = None) -> dict[str, str]:
    """The node-data overlays of ``char`` as Model Explorer node-data JSON text, by overlay name
    (:data:`OVERLAYS`; ``measured`` only with ``per_layer`` holding per-op times). Times in µs."""
    _, _, nd = require()
    hw = char.hardware.name
    values = {
        "macs": ("MACs", lambda r: r.macs or 0, None),
        "bytes": ("bytes read + written", lambda r: r.bytes, None),
        "arithmetic_intensity": ("arithmetic intensity (FLOPs/byte)", lambda r: r.arithmetic_intensity or 0.0,
                                 ["sum", "avg"]),  # a layer's intensity is not a sum or an op average
        "roofline_time": (f"roofline time on {hw} (µs)", lambda r: r.roofline_time_s * 1e6, None),
        "compute_bound_time": (f"compute-bound roofline time on {hw} (µs)",
                               lambda r: r.roofline_time_s * 1e6 if r.bound == "compute-bound" else 0.0, None),
        "memory_bound_time": (f"memory-bound roofline time on {hw} (µs)",
                              lambda r: r.roofline_time_s * 1e6 if r.bound == "memory-bound" else 0.0, None),
    }
    if per_layer is not None and per_layer.op_ms:
        values["measured"] = ("measured time (µs per iteration)", lambda r: (per_layer.op_time(r.index) or 0.0) * 1e3,
                              None)
    out = {}
    for key, (name, value, hidden) in values.items():
        results = {f"n{r.index}": nd.NodeDataResult(value=value(r)) for r in char.rows}
        data = nd.GraphNodeData(results=results, name=name, hideAggregatedStats=hidden,
                                gradient=[nd.GradientItem(**g) for g in GRADIENT])
        out[key] = nd.ModelNodeData(graphsData={graph_id: data}).to_json_string()
    results = {f"n{r.index}": nd.NodeDataResult(value=r.bound, bgColor=BOUND_COLOURS.get(r.bound))
               for r in char.rows}
    bound = nd.GraphNodeData(results=results, name=f"bound on {hw} (op colours; layers: see their roofline time)")
    out["bound"] = nd.ModelNodeData(graphsData={graph_id: bound}).to_json_string()
    return out


def write_files(char: Characterization, folder: str | Path, name: str = "tk",
                per_layer: PerLayerResult | None = None) -> tuple[Path, list[Path]]:
    """Write the graph JSON (``<name>.json``) and one node-data file per overlay
    (``<name>.<overlay>.nodedata.json``) into ``folder``; return their paths (``per_layer``: a
    per-layer run's measured times, see :func:`node_data`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    graph_path = folder / f"{name}.json"
    write_atomic(graph_path, json.dumps(graph_json(char, name, per_layer)).encode(), fsync=False)
    data_paths = []
    for key, text in node_data(char, name, per_layer).items():
        path = folder / f"{name}.{key}.nodedata.json"
        write_atomic(path, text.encode(), fsync=False)
        data_paths.append(path)
    return graph_path, data_paths


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at ``host`` now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve(char: Characterization, folder: str | Path, *, name: str = "tk", host: str = "127.0.0.1",
          port: int | None = None, open_browser: bool = True, announce=print,
          per_layer: PerLayerResult | None = None) -> None:
    """Serve ``char`` in Model Explorer at ``http://host:port/`` until Ctrl-C (blocks).

    The graph and overlays are written into ``folder`` first (:func:`write_files`, with ``per_layer``'s
    measured times when given). ``port`` ``None``
    picks a free one. ``announce`` receives the one line with the page's address (printed by
    default) before the server blocks.

    Raises:
        TkError: Model Explorer is not installed, or ``port`` is taken.
    """
    me, _, _ = require()
    from model_explorer import server

    graph_path, data_paths = write_files(char, folder, name, per_layer)
    config = me.config()
    config.add_model_from_path(str(graph_path))
    for path in data_paths:
        config.add_node_data_from_path(str(path))
    port = port or free_port(host)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        if s.connect_ex((host, port)) == 0:
            raise TkError(f"port {port} on {host} is already in use", hint="choose another with --port")
    announce(f"Model Explorer: http://{host}:{port}/?data={config.to_url_param_value()}")
    server.start(host=host, port=port, config=config, no_open_in_browser=not open_browser)
