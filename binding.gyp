{
  # quorumkey native kernels (see native/module.cc). `npm install` runs `node-gyp rebuild`,
  # which builds build/Release/quorumkey_native.node; src/protocol/math/curve.ts loads it.
  "targets": [
    {
      "target_name": "quorumkey_native",
      "sources": [
        "native/module.cc",
        "native/curve.cc",
        "native/hash-to-curve.cc",
        "native/base-ot.cc",
        "native/scalar.cc",
        "native/ot.cc",
        "native/vole.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "OPENSSL_API_COMPAT=0x30000000L"
      ],
      "cflags_cc!": ["-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "libraries": ["-lcrypto"],
      "conditions": [
        ["OS=='mac'", {
          "xcode_settings": {
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "GCC_ENABLE_CPP_EXCEPTIONS": "NO",
            "MACOSX_DEPLOYMENT_TARGET": "11.0"
          }
        }]
      ]
    }
  ]
}
