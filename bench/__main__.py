import sys

if "--cluster" in sys.argv[1:]:  # cluster mode against the single process: bench/cluster.py
    from bench.cluster import main as cluster_main

    raise SystemExit(cluster_main([a for a in sys.argv[1:] if a != "--cluster"]))

from bench.run import main

raise SystemExit(main())
