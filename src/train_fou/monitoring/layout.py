"""The Foxglove layout of the live view (config/foxglove_layout.json), built with foxglove.layouts.

Left: the camera with the detector's boxes. Right, top to bottom: commanded
and applied power over time, the controller's state as a state transition
row, the diagnostics summary. Import it in Foxglove (Layouts > Import from
file). The committed file is this function's output (a test compares them);
regenerate with `python -m train_fou.monitoring.layout > config/foxglove_layout.json`.
"""
from __future__ import annotations

import json

from train_fou.monitoring.live_view import channel_topics


def layout(namespace: str = '') -> dict:
    import foxglove.layouts as fl

    t = channel_topics(namespace)
    camera = fl.ImagePanel(title='camera and detections', config=fl.ImageConfig(image_mode=fl.ImageModeConfig(
        image_topic=t.image, annotations={t.annotations: fl.ImageAnnotationSettings(visible=True)})))
    power = fl.PlotPanel(title='power (%)', config=fl.PlotConfig(paths=[
        fl.PlotSeries(value=f'{t.speed_command}.power', label='commanded', timestamp_method='headerStamp'),
        fl.PlotSeries(value=f'{t.hub_state}.applied_power', label='applied by the hub (127: brake)',
                      timestamp_method='headerStamp'),
    ], show_legend=True, min_y_value=-100, max_y_value=130))
    state = fl.StateTransitionsPanel(title='controller state', config=fl.StateTransitionsConfig(paths=[
        fl.StateTransitionsSeries(value=f'{t.speed_command}.state_name', label='state',
                                  timestamp_method='headerStamp'),
        fl.StateTransitionsSeries(value=f'{t.hub_state}.connected', label='hub connected',
                                  timestamp_method='headerStamp'),
    ]))
    diagnostics = fl.DiagnosticsSummaryPanel(title='diagnostics', config=fl.DiagnosticsSummaryConfig(
        topic_to_render=t.diagnostics, sort_by_level=True))
    right = fl.SplitContainer(direction='column', items=[
        fl.SplitItem(proportion=2, content=power), fl.SplitItem(proportion=1, content=state),
        fl.SplitItem(proportion=2, content=diagnostics)])
    root = fl.Layout(content=fl.SplitContainer(direction='row', items=[
        fl.SplitItem(proportion=3, content=camera), fl.SplitItem(proportion=2, content=right)]))
    return json.loads(root.to_json())


def layout_text(namespace: str = '') -> str:
    return json.dumps(layout(namespace), indent=2) + '\n'


if __name__ == '__main__':
    import sys
    sys.stdout.write(layout_text(sys.argv[1] if len(sys.argv) > 1 else ''))
