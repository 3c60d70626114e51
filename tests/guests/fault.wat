;; A fault plugin (chaos:plugin/fault@0.1.1) filled in by the tests
;; (`wat_fault` in tests/e2e/util.rs): the name placeholder is what
;; describe() returns (its length goes in name_len), and the inject
;; placeholder is the body of the core inject function, which must leave
;; the address of its result<_, string> (laid out at 1536) on the stack.
;; One file covers every name the host must refuse and behaviours a Rust
;; guest cannot produce on purpose.
(component
  (core module $Main
    (memory (export "memory") 1)
    (data (i32.const 2048) "{name}")
    (data (i32.const 1792) "0.1.0")
    (data (i32.const 1808) "chaos-host tests")

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

    ;; plugin-info at 1024: name, version, author, description (empty),
    ;; kind fault, no capabilities, no params.
    (func (export "describe") (result i32)
      (i32.store offset=0 (i32.const 1024) (i32.const 2048))
      (i32.store offset=4 (i32.const 1024) (i32.const {name_len}))
      (i32.store offset=8 (i32.const 1024) (i32.const 1792))
      (i32.store offset=12 (i32.const 1024) (i32.const 5))
      (i32.store offset=16 (i32.const 1024) (i32.const 1808))
      (i32.store offset=20 (i32.const 1024) (i32.const 16))
      (i32.store offset=24 (i32.const 1024) (i32.const 0))
      (i32.store offset=28 (i32.const 1024) (i32.const 0))
      (i32.store8 offset=32 (i32.const 1024) (i32.const 0))
      (i32.store offset=36 (i32.const 1024) (i32.const 0))
      (i32.store offset=40 (i32.const 1024) (i32.const 0))
      (i32.store offset=44 (i32.const 1024) (i32.const 0))
      (i32.store offset=48 (i32.const 1024) (i32.const 0))
      (i32.const 1024))

    ;; cycle-info arrives flat: cycle, seed, nodes, primary, writes, params.
    (func (export "inject")
      (param i32 i64 i32 i32 i32 i32 i32) (result i32)
      {inject})
  )
  (core instance $main (instantiate $Main))

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
