"""Index builds past one machine: sharded, resumable embedding (:mod:`.shards`), the worker that
embeds shards (:mod:`.worker`) and the Ray Data engine that runs it on a cluster (:mod:`.ray_engine`)."""
