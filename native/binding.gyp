{
  "targets": [
    {
      "target_name": "multifd_native",
      "sources": ["multifd_native.c", "library.c", "session.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror"],
      "libraries": ["-ldl", "-lpthread"]
    }
  ]
}
