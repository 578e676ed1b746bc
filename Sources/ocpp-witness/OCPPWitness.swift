import ArgumentParser
import WitnessBenchmarks
import WitnessCapture

@main
struct OCPPWitness: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ocpp-witness",
        abstract: "A transparent OCPP man-in-the-middle that forwards, records and checks charger ↔ backend traffic.",
        discussion: """
            Put it between chargers and their backend (CSMS): every OCPP-J message (1.6, 2.0.1, 2.1, over ws or wss)
            is forwarded unchanged and recorded to a JSON Lines capture. Start with `ocpp-witness demo`.
            """,
        version: CaptureFormat.toolVersion,
        subcommands: [
            ProxyCommand.self, ReportCommand.self, DemoCommand.self, SimulateCommand.self, PolicyCommand.self, RulesCommand.self,
            ExportCommand.self, ImportCommand.self, SniffCommand.self, ReplayCommand.self, DiffCommand.self, HandoverCommand.self,
            ViewCommand.self, VerifyCommand.self, BillingCommand.self, BenchmarkCommand.self,
        ]
    )
}
