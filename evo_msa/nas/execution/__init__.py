"""Where evaluations run: in this process (inline) or as Ray Tune trials (tune)."""
