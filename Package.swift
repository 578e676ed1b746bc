// swift-tools-version: 6.1
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "ocpp-witness",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ocpp-witness", targets: ["ocpp-witness"]),
        .library(name: "OCPPWire", targets: ["OCPPWire"]),
        .library(name: "OCPPSchema", targets: ["OCPPSchema"]),
        .library(name: "WitnessCapture", targets: ["WitnessCapture"]),
        .library(name: "WitnessModel", targets: ["WitnessModel"]),
        .library(name: "WitnessPolicy", targets: ["WitnessPolicy"]),
        .library(name: "WitnessChaos", targets: ["WitnessChaos"]),
        .library(name: "WitnessAnalysis", targets: ["WitnessAnalysis"]),
        .library(name: "WitnessProxy", targets: ["WitnessProxy"]),
        .library(name: "WitnessLive", targets: ["WitnessLive"]),
        .library(name: "WitnessSim", targets: ["WitnessSim"]),
        .library(name: "WitnessPcap", targets: ["WitnessPcap"]),
        .library(name: "WitnessDiff", targets: ["WitnessDiff"]),
        .library(name: "WitnessReplay", targets: ["WitnessReplay"]),
        .library(name: "WitnessMetrics", targets: ["WitnessMetrics"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        .target(
            name: "OCPPWire",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "OCPPSchema",
            dependencies: ["OCPPWire"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WitnessCapture",
            dependencies: [
                "OCPPWire",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WitnessAnalysis",
            dependencies: [
                "OCPPWire", "OCPPSchema", "WitnessCapture", "WitnessModel", "WitnessPolicy",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                // Signed meter values (OCMF): ECDSA P-256 with SHA-256 from swift-crypto, brainpool from the system's OpenSSL.
                .product(name: "Crypto", package: "swift-crypto"),
                "COpenSSL",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // The charger model: connectors, EVSEs and the transactions running on them, followed from the messages.
        // The fault engine and the analyzer share it.
        .target(name: "WitnessModel", dependencies: ["OCPPWire"], swiftSettings: strictSettings),
        // The policy a pilot runs under, read once and bounded at load time: faults, witness checks and, as they
        // come, the site's declarations. WitnessChaos applies its faults; WitnessAnalysis judges its checks.
        .target(
            name: "WitnessPolicy",
            dependencies: ["OCPPWire", .product(name: "Yams", package: "Yams")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WitnessChaos",
            dependencies: [
                "OCPPWire",
                "WitnessModel",
                "WitnessPolicy",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WitnessProxy",
            dependencies: [
                "OCPPWire",
                "WitnessCapture",
                "WitnessChaos",
                "WitnessModel",
                "WitnessPolicy",
                "WitnessTransport",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // The web side: the admin API, the live page and the view of a recorded capture. The relay does not
        // depend on it; it reads the proxy's public state and controls.
        .target(
            name: "WitnessLive",
            dependencies: [
                "OCPPWire",
                "WitnessCapture",
                "WitnessChaos",
                "WitnessModel",
                "WitnessPolicy",
                "WitnessProxy",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // The Prometheus exposition of what the other modules count through swift-metrics.
        .target(
            name: "WitnessMetrics",
            dependencies: [.product(name: "CoreMetrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WitnessTransport",
            dependencies: [
                "OCPPWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WitnessSim",
            dependencies: [
                "OCPPWire",
                "WitnessTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(name: "CSpawn"),
        .target(name: "ChildProcesses", dependencies: ["CSpawn"], swiftSettings: strictSettings),
        // The system's libcrypto: brainpool curves for signed meter values, which swift-crypto's BoringSSL lacks.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"])]
        ),
        .target(
            name: "WitnessPcap",
            dependencies: [
                "CPcap",
                "OCPPWire",
                "WitnessCapture",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // Sessions read from captures and their comparison (`diff`): no proxy, no network.
        .target(
            name: "WitnessDiff",
            dependencies: ["OCPPWire", "WitnessCapture"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WitnessReplay",
            dependencies: [
                "OCPPWire",
                "WitnessCapture",
                "WitnessDiff",
                "WitnessSim",
                "WitnessProxy",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // What the command-line programs share: finding the data the binary ships with, process limits.
        .target(
            name: "WitnessCLISupport",
            dependencies: ["OCPPSchema", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strictSettings
        ),
        // The `benchmark` subcommands: load generators, child processes, the peers they measure against.
        .target(
            name: "WitnessBenchmarks",
            dependencies: [
                "OCPPWire",
                "OCPPSchema",
                "WitnessAnalysis",
                "WitnessCapture",
                "WitnessSim",
                "WitnessCLISupport",
                "WitnessMetrics",
                "ChildProcesses",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ocpp-witness",
            dependencies: [
                "WitnessBenchmarks",
                "WitnessCLISupport",
                "OCPPWire",
                "WitnessChaos",
                "WitnessPolicy",
                "OCPPSchema",
                "WitnessAnalysis",
                "WitnessCapture",
                "WitnessProxy",
                "WitnessLive",
                "WitnessSim",
                "WitnessPcap",
                "WitnessReplay",
                "WitnessDiff",
                "WitnessMetrics",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        // What the test targets share: the proxy on loopback, certificates, running other programs.
        .target(
            name: "WitnessTestSupport",
            dependencies: [
                "WitnessProxy", "WitnessCapture", "WitnessSim", "OCPPWire", "ChildProcesses",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/WitnessTestSupport",
            swiftSettings: strictSettings
        ),
        .testTarget(name: "OCPPWireTests", dependencies: ["OCPPWire"], swiftSettings: strictSettings),
        .testTarget(
            name: "WitnessTransportTests",
            dependencies: [
                "WitnessTransport", "OCPPWire", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "ChildProcessesTests", dependencies: ["ChildProcesses"], swiftSettings: strictSettings),
        .testTarget(
            name: "WitnessChaosTests", dependencies: ["WitnessChaos", "WitnessPolicy", "OCPPWire", "WitnessTestSupport", .product(name: "Yams", package: "Yams")],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "OCPPSchemaTests", dependencies: ["OCPPSchema", "OCPPWire"], swiftSettings: strictSettings),
        .testTarget(
            name: "WitnessAnalysisTests",
            dependencies: [
                "WitnessAnalysis", "OCPPSchema", "WitnessPolicy", "WitnessCapture", "OCPPWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "WitnessCaptureTests",
            dependencies: [
                "WitnessCapture", "OCPPWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "WitnessProxyTests",
            dependencies: [
                "WitnessProxy", "WitnessCapture", "WitnessSim", "OCPPWire", "WitnessAnalysis", "OCPPSchema", "WitnessChaos", "WitnessPolicy", "ChildProcesses",
                "WitnessTestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "WitnessLiveTests",
            dependencies: [
                "WitnessLive", "WitnessProxy", "WitnessCapture", "OCPPWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "WitnessPcapTests",
            dependencies: [
                "WitnessPcap", "WitnessReplay", "WitnessDiff", "WitnessCapture", "WitnessSim", "WitnessProxy", "OCPPWire", "ChildProcesses", "WitnessTestSupport",
                "WitnessAnalysis", "OCPPSchema", "WitnessChaos", "WitnessPolicy",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "OCPPWitnessCLITests",
            dependencies: [
                "WitnessCapture", "WitnessSim", "OCPPWire", "ChildProcesses", "WitnessTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)
