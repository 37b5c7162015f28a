"""What several test files share, imported as `helpers.<module>` (pytest puts tests/ on sys.path):
waiting (deadlines, never fixed sleeps), models (tiny ONNX models, image bags), fake_gpu, fake_ble,
hub (LWP3 frames), and the programs tests start as child processes (probe_node, intruder, crasher, ...)."""
