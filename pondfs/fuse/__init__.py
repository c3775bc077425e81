"""The parts of the FUSE layer behind the handlers of :mod:`pondfs.fuse_ops`.

- :mod:`.view`: calling the served tinyfs view from the event loop (serialized, in threads).
- :mod:`.inodes`: the mount's inode numbers.
- :mod:`.files`: open files, their handles and spools.
- :mod:`.kernel`: telling the kernel to forget what it cached.
- :mod:`.committer`: the group committer, a task of the mount.
- :mod:`.follower`: the pond follower of a read-only mount, a task of the mount.
- :mod:`.stats`: how many requests of each kind the mount served.
"""
