;; A fault plugin (chaos:plugin/fault@0.1.1) that holds too much memory by
;; spreading it over several linear memories, each under the 64 MiB cap.
;;
;; $Main has its own memory (for the canonical ABI); $Bomb, instantiated
;; three times, brings three more. `inject` grows each bomb memory by 600
;; pages (37.5 MiB) and fills it: 112.5 MiB in all. A per-memory limit lets
;; every growth through; a limit over the whole instance must stop the
;; second. Should every growth be refused quietly (memory.grow = -1),
;; inject says so in its error; should every growth succeed, it returns ok.
;;
;; Hand-written (tests/e2e/hostile.rs turns it into bytes with the `wat`
;; crate): a Rust guest cannot get several memories.
(component
  (core module $Bomb
    (memory 1)
    ;; Grow by $pages and touch every byte; the old size in pages, or -1.
    (func (export "grow") (param $pages i32) (result i32)
      (local $old i32)
      (local.set $old (memory.grow (local.get $pages)))
      (if (i32.ne (local.get $old) (i32.const -1))
        (then
          (memory.fill
            (i32.const 0)
            (i32.const 0xab)
            (i32.mul (memory.size) (i32.const 65536)))))
      (local.get $old))
  )

  (core module $Main
    (import "bombs" "grow0" (func $grow0 (param i32) (result i32)))
    (import "bombs" "grow1" (func $grow1 (param i32) (result i32)))
    (import "bombs" "grow2" (func $grow2 (param i32) (result i32)))
    (memory (export "memory") 1)

    ;; Strings describe() and inject() return.
    (data (i32.const 2048) "multi_memory_bomb")
    (data (i32.const 2112) "0.1.0")
    (data (i32.const 2128) "chaos-host tests")
    (data (i32.const 2176) "holds 112 MiB over four linear memories (tests only)")
    (data (i32.const 2304) "multi_memory_bomb: a growth was refused")

    ;; A bump allocator for the host's lowering of `cycle.params`.
    (global $heap (mut i32) (i32.const 8192))
    (func (export "realloc")
      (param $old i32) (param $old_size i32) (param $align i32) (param $size i32)
      (result i32)
      (local $at i32)
      (local.set $at
        (i32.and
          (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get $align))))
      (global.set $heap (i32.add (local.get $at) (local.get $size)))
      (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
        (then (unreachable)))
      (local.get $at))

    ;; plugin-info at 1024: four strings (ptr, len), kind (u8), two empty
    ;; lists (ptr, len).
    (func (export "describe") (result i32)
      (i32.store offset=0 (i32.const 1024) (i32.const 2048))
      (i32.store offset=4 (i32.const 1024) (i32.const 17))
      (i32.store offset=8 (i32.const 1024) (i32.const 2112))
      (i32.store offset=12 (i32.const 1024) (i32.const 5))
      (i32.store offset=16 (i32.const 1024) (i32.const 2128))
      (i32.store offset=20 (i32.const 1024) (i32.const 16))
      (i32.store offset=24 (i32.const 1024) (i32.const 2176))
      (i32.store offset=28 (i32.const 1024) (i32.const 52))
      (i32.store8 offset=32 (i32.const 1024) (i32.const 0))
      (i32.store offset=36 (i32.const 1024) (i32.const 0))
      (i32.store offset=40 (i32.const 1024) (i32.const 0))
      (i32.store offset=44 (i32.const 1024) (i32.const 0))
      (i32.store offset=48 (i32.const 1024) (i32.const 0))
      (i32.const 1024))

    ;; result<_, string> at 1536: tag (u8), then the string (ptr, len).
    (func $refused (result i32)
      (i32.store8 offset=0 (i32.const 1536) (i32.const 1))
      (i32.store offset=4 (i32.const 1536) (i32.const 2304))
      (i32.store offset=8 (i32.const 1536) (i32.const 39))
      (i32.const 1536))

    ;; cycle-info arrives flat: cycle, seed, nodes, primary, writes, params.
    (func (export "inject")
      (param i32 i64 i32 i32 i32 i32 i32) (result i32)
      (if (i32.eq (call $grow0 (i32.const 600)) (i32.const -1))
        (then (return (call $refused))))
      (if (i32.eq (call $grow1 (i32.const 600)) (i32.const -1))
        (then (return (call $refused))))
      (if (i32.eq (call $grow2 (i32.const 600)) (i32.const -1))
        (then (return (call $refused))))
      (i32.store8 (i32.const 1536) (i32.const 0))
      (i32.const 1536))
  )

  (core instance $b0 (instantiate $Bomb))
  (core instance $b1 (instantiate $Bomb))
  (core instance $b2 (instantiate $Bomb))
  (core instance $bombs
    (export "grow0" (func $b0 "grow"))
    (export "grow1" (func $b1 "grow"))
    (export "grow2" (func $b2 "grow")))
  (core instance $main (instantiate $Main (with "bombs" (instance $bombs))))

  ;; chaos:plugin/types@0.1.1, as far as the fault interface uses it,
  ;; imported as every plugin imports it (the exported interface may only
  ;; use types that come from outside or are exported).
  (import "chaos:plugin/types@0.1.1" (instance $types
    (type $c (enum "signal" "pause" "partition" "clock"))
    (export "capability" (type $capability (eq $c)))
    (type $k (enum "fault" "assertion"))
    (export "plugin-kind" (type $plugin-kind (eq $k)))
    (type $t (enum "integer" "float" "boolean" "text"))
    (export "param-type" (type $param-type (eq $t)))
    (type $s (record
      (field "name" string)
      (field "kind" $param-type)
      (field "default-value" string)
      (field "doc" string)))
    (export "param-spec" (type $param-spec (eq $s)))
    (type $i (record
      (field "name" string)
      (field "version" string)
      (field "author" string)
      (field "description" string)
      (field "kind" $plugin-kind)
      (field "capabilities" (list $capability))
      (field "params" (list $param-spec))))
    (export "plugin-info" (type $plugin-info (eq $i)))
    (type $y (record
      (field "cycle" u32)
      (field "seed" u64)
      (field "nodes" u32)
      (field "primary" u32)
      (field "writes" u32)
      (field "params" (list (tuple string string)))))
    (export "cycle-info" (type $cycle-info (eq $y)))))
  (alias export $types "capability" (type $capability))
  (alias export $types "plugin-kind" (type $plugin-kind))
  (alias export $types "param-type" (type $param-type))
  (alias export $types "param-spec" (type $param-spec))
  (alias export $types "plugin-info" (type $plugin-info))
  (alias export $types "cycle-info" (type $cycle-info))

  (func $describe (result $plugin-info)
    (canon lift (core func $main "describe")
      (memory $main "memory") (realloc (func $main "realloc"))))
  (func $inject (param "cycle" $cycle-info) (result (result (error string)))
    (canon lift (core func $main "inject")
      (memory $main "memory") (realloc (func $main "realloc"))))

  ;; An exported function may only use named types, so the interface is a
  ;; component of its own (the shape wit-component gives it): it imports
  ;; the types and the functions, and exports them under their WIT names.
  (component $Fault
    (type $capability0 (enum "signal" "pause" "partition" "clock"))
    (import "import-type-capability" (type $capability (eq $capability0)))
    (type $plugin-kind0 (enum "fault" "assertion"))
    (import "import-type-plugin-kind" (type $plugin-kind (eq $plugin-kind0)))
    (type $param-type0 (enum "integer" "float" "boolean" "text"))
    (import "import-type-param-type" (type $param-type (eq $param-type0)))
    (type $param-spec0 (record
      (field "name" string)
      (field "kind" $param-type)
      (field "default-value" string)
      (field "doc" string)))
    (import "import-type-param-spec" (type $param-spec (eq $param-spec0)))
    (type $plugin-info0 (record
      (field "name" string)
      (field "version" string)
      (field "author" string)
      (field "description" string)
      (field "kind" $plugin-kind)
      (field "capabilities" (list $capability))
      (field "params" (list $param-spec))))
    (import "import-type-plugin-info" (type $plugin-info (eq $plugin-info0)))
    (type $cycle-info0 (record
      (field "cycle" u32)
      (field "seed" u64)
      (field "nodes" u32)
      (field "primary" u32)
      (field "writes" u32)
      (field "params" (list (tuple string string)))))
    (import "import-type-cycle-info" (type $cycle-info (eq $cycle-info0)))
    (import "import-func-describe" (func $describe (result $plugin-info)))
    (import "import-func-inject"
      (func $inject (param "cycle" $cycle-info) (result (result (error string)))))
    (export "capability" (type $capability))
    (export "plugin-kind" (type $plugin-kind))
    (export "param-type" (type $param-type))
    (export "param-spec" (type $param-spec))
    (export $plugin-info' "plugin-info" (type $plugin-info))
    (export $cycle-info' "cycle-info" (type $cycle-info))
    (export "describe" (func $describe) (func (result $plugin-info')))
    (export "inject" (func $inject)
      (func (param "cycle" $cycle-info') (result (result (error string)))))
  )
  (instance $fault (instantiate $Fault
    (with "import-type-capability" (type $capability))
    (with "import-type-plugin-kind" (type $plugin-kind))
    (with "import-type-param-type" (type $param-type))
    (with "import-type-param-spec" (type $param-spec))
    (with "import-type-plugin-info" (type $plugin-info))
    (with "import-type-cycle-info" (type $cycle-info))
    (with "import-func-describe" (func $describe))
    (with "import-func-inject" (func $inject))))
  (export "chaos:plugin/fault@0.1.1" (instance $fault))
)
