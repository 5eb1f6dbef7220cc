"""Deployment: the deterministic policy of any agent as an ONNX model (checked against PyTorch with onnxruntime)
and as a TensorRT engine built from it; ``rlte export`` is the command line."""

from rlte_plugins.export.onnx import ExportError, ExportResult, ParityReport, check_onnx, export_onnx, read_metadata

__all__ = ["ExportError", "ExportResult", "ParityReport", "check_onnx", "export_onnx", "read_metadata"]
