import sys

from benchmark.launch import LauncherPluginMissing, check_launcher_plugin

try:  # before the heavy imports: a missing launcher plugin fails in a fraction of a second
    check_launcher_plugin(sys.argv[1:])
except LauncherPluginMissing as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)

from benchmark.cli import entry  # noqa: E402

entry()
