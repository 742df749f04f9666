"""The agent's file layer: find log files (``discovery``), name them so a rename or a copy keeps
their identity (``identity``), and read complete lines from them exactly once (``tailer``,
``lines``)."""
