"""Import every module of the installed augpaint_fast (run from outside the source tree, in a fresh venv).

A module may fail only because an OPTIONAL dependency (an extra) is not installed; anything else - a module
left out of the wheel, a missing core dependency, a syntax error - fails the check.
"""
import importlib
import pkgutil
import sys

OPTIONAL = {"triton", "onnx", "onnxruntime", "tensorrt", "openvino", "monai", "ray", "fastapi", "uvicorn",
            "h11", "multipart", "httpx", "prometheus_client", "matplotlib", "onnxscript", "diffusers"}

import augpaint_fast  # noqa: E402

if "site-packages" not in augpaint_fast.__file__:
    sys.exit(f"augpaint_fast imported from {augpaint_fast.__file__}, not from an installed wheel")
failed, skipped, ok = [], [], 0
for info in pkgutil.walk_packages(augpaint_fast.__path__, "augpaint_fast."):
    if info.name.endswith(".__main__"):  # runs the CLI when imported
        continue
    try:
        importlib.import_module(info.name)
        ok += 1
    except ImportError as exc:
        root = (exc.name or "").split(".")[0]
        (skipped if root in OPTIONAL else failed).append(f"{info.name}: {exc}")
    except Exception as exc:  # noqa: BLE001
        failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
print(f"imported {ok} modules of the installed wheel; {len(skipped)} need optional extras")
for line in skipped:
    print("  optional:", line)
if failed:
    sys.exit("modules that fail to import:\n  " + "\n  ".join(failed))
