import ArgumentParser
import Foundation
import OCPPSchema
import OCPPWire
import WitnessAnalysis
import WitnessCapture
import WitnessCLISupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The analyzer over a fleet's day, as `report` reads it: memory that follows the open state, not the capture.
struct AnalysisBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analysis",
        abstract: "Analyses a made-up day of a fleet (chargers with two connectors) as `report` reads a capture: time and memory.",
        discussion: """
            Each charger connects and boots, heartbeats every 5 minutes, and charges twice a day on each of its two connectors
            (an hour each, meter values every minute, status changes around them); one charger in a hundred loses its connection
            for 10 minutes at noon and comes back. The records are made in time order, as a capture's lines (JSON text), parsed
            and analysed one at a time with the rules, schema validation and the charger model, as `report` does, without
            files. Printed: records, deviations found, CPU time per record, and the process's resident memory as the day goes on
            (it follows what is open at that moment, not the records read). Use a release build.
            """
    )

    @Option(help: "Chargers (two connectors each).")
    var chargers: Int = 10_000

    @Option(help: "Hours of the day simulated (sessions start between hour 2 and hour 20).")
    var hours: Int = 24

    @Option(help: ArgumentHelp("Folder with the OCA schemas.", valueName: "DIR"))
    var schemas: String?

    func validate() throws {
        guard self.chargers >= 1, self.hours >= 1, self.hours <= 24 else { throw ValidationError("--chargers expects at least 1 and --hours 1 to 24") }
    }

    func run() async throws {
        let registry = try SchemaRegistry.load(forCommand: self.schemas)
        print("OCPP Witness analysis benchmark — \(machineDescription())")
        print("\(self.chargers) chargers × 2 connectors, \(self.hours) h: boots, heartbeats every 5 min, 2 sessions per connector, outages")
        let analyzer = Analyzer(schemas: registry)
        var day = FleetDay(chargers: self.chargers)
        let startCPU = Self.cpuSeconds()
        let startWall = ContinuousClock.now
        var records = 0
        var rows: [(hour: Int, records: Int, rssMiB: Double)] = [(0, 0, Self.residentMiB())]
        var parseFailures = 0
        for minute in 0..<(self.hours * 60) {
            day.minute(minute) { line in
                records += 1
                guard case .object(let fields)? = try? line.utf8.withContiguousStorageIfAvailable({ try JSONParser.parse(UnsafeRawBufferPointer($0)) }) ?? nil else {
                    parseFailures += 1
                    return
                }
                analyzer.consume(CaptureRecord(file: "fleet-day.jsonl", line: records, fields: fields))
            }
            if (minute + 1) % 60 == 0 { rows.append(((minute + 1) / 60, records, Self.residentMiB())) }
        }
        day.end(at: self.hours * 60) { line in
            records += 1
            if case .object(let fields)? = try? line.utf8.withContiguousStorageIfAvailable({ try JSONParser.parse(UnsafeRawBufferPointer($0)) }) ?? nil {
                analyzer.consume(CaptureRecord(file: "fleet-day.jsonl", line: records, fields: fields))
            }
        }
        let report = analyzer.finish()
        let cpu = Self.cpuSeconds() - startCPU
        let wall = ContinuousClock.now - startWall
        print("")
        print("| hour | records read | resident memory |")
        print("|---:|---:|---:|")
        for row in rows where row.hour == 0 || row.hour % max(1, self.hours / 8) == 0 || row.hour == self.hours {
            print("| \(row.hour) | \(row.records) | \(String(format: "%.1f", row.rssMiB)) MiB |")
        }
        print("")
        let perRecord = cpu / Double(max(records, 1)) * 1_000_000
        print("records: \(records) (\(parseFailures) unreadable); CPU \(String(format: "%.1f", cpu)) s (\(String(format: "%.2f", perRecord)) µs per record, line parsing included); wall \(wall)")
        print("deviations: \(report.countsByRule.values.reduce(0, +)) \(report.countsByRule.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
        print("peak resident memory: \(String(format: "%.1f", Self.peakMiB())) MiB")
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    static func residentMiB() -> Double { Self.status("VmRSS:") }
    static func peakMiB() -> Double { Self.status("VmHWM:") }

    private static func status(_ key: String) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key) }),
            let kib = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) })
        else { return 0 }
        return kib / 1024
    }
}

/// The fleet's day as capture lines, minute by minute; each charger acts at its own second of the minute, so
/// the lines come in time order.
struct FleetDay {
    let chargers: Int
    private let byPhase: [[Int]]
    private var connection: [Int]
    private var transaction = 0
    private var message = 0
    private var running: [Int: Int] = [:]
    private let day = Timestamp(rfc3339: "2026-12-01T00:00:00Z")!.microseconds

    init(chargers: Int) {
        self.chargers = chargers
        var byPhase = Array(repeating: [Int](), count: 60)
        for charger in 0..<chargers { byPhase[charger % 60].append(charger) }
        self.byPhase = byPhase
        self.connection = Array(0..<chargers)
    }

    /// When a connector's sessions begin (minutes): two a day, spread over the fleet.
    static func sessionStarts(charger: Int, connector: Int) -> [Int] {
        let base = 120 + (connector - 1) * 180 + charger % 97
        return [base, base + 600]
    }

    mutating func minute(_ minute: Int, _ emit: (String) -> Void) {
        for second in 0..<60 {
            let ts = Timestamp(microseconds: self.day + Int64(minute * 60 + second) * 1_000_000).rfc3339
            for charger in self.byPhase[second] {
                self.act(charger, minute: minute, ts: ts, emit)
            }
        }
    }

    mutating func end(at minute: Int, _ emit: (String) -> Void) {
        let ts = Timestamp(microseconds: self.day + Int64(minute * 60) * 1_000_000).rfc3339
        for charger in 0..<self.chargers { emit(self.close(charger, ts: ts)) }
    }

    private mutating func act(_ charger: Int, minute: Int, ts: String, _ emit: (String) -> Void) {
        let outage = charger % 100 == 0
        if minute == 0 {
            emit(self.open(charger, ts: ts))
            self.exchange(charger, ts: ts, "BootNotification", #"{"chargePointVendor":"Fleet","chargePointModel":"F2","firmwareVersion":"1.0"}"#, #"{"status":"Accepted","currentTime":"\#(ts)","interval":300}"#, emit)
            for connector in 0...2 { self.status(charger, connector, "Available", ts: ts, emit) }
            return
        }
        if outage && minute == 720 {
            emit(self.close(charger, ts: ts))
            return
        }
        if outage && minute > 720 && minute < 730 { return }
        if outage && minute == 730 {
            self.connection[charger] += self.chargers
            emit(self.open(charger, ts: ts))
        }
        if minute % 5 == charger % 5 {
            self.exchange(charger, ts: ts, "Heartbeat", "{}", #"{"currentTime":"\#(ts)"}"#, emit)
        }
        for connector in 1...2 {
            let key = charger * 3 + connector
            for start in Self.sessionStarts(charger: charger, connector: connector) where minute >= start && minute <= start + 60 {
                let wh = 1000 + (minute - start) * 180
                if minute == start {
                    self.transaction += 1
                    self.running[key] = self.transaction
                    self.exchange(
                        charger, ts: ts, "StartTransaction", #"{"connectorId":\#(connector),"idTag":"TAG\#(charger)","meterStart":\#(wh),"timestamp":"\#(ts)"}"#,
                        #"{"transactionId":\#(self.transaction),"idTagInfo":{"status":"Accepted"}}"#, emit
                    )
                    self.status(charger, connector, "Charging", ts: ts, emit)
                } else if let id = self.running[key], minute < start + 60 {
                    self.exchange(
                        charger, ts: ts, "MeterValues",
                        #"{"connectorId":\#(connector),"transactionId":\#(id),"meterValue":[{"timestamp":"\#(ts)","sampledValue":[{"value":"\#(wh)","context":"Sample.Periodic","measurand":"Energy.Active.Import.Register","unit":"Wh"}]}]}"#,
                        "{}", emit
                    )
                } else if let id = self.running.removeValue(forKey: key) {
                    self.exchange(
                        charger, ts: ts, "StopTransaction", #"{"transactionId":\#(id),"meterStop":\#(wh),"timestamp":"\#(ts)","reason":"Local"}"#,
                        #"{"idTagInfo":{"status":"Accepted"}}"#, emit
                    )
                    self.status(charger, connector, "Available", ts: ts, emit)
                }
            }
        }
    }

    private func open(_ charger: Int, ts: String) -> String {
        #"{"ts":"\#(ts)","kind":"open","conn":\#(self.connection[charger]),"chargePoint":"FLEET-\#(charger)","chosen":"ocpp1.6","version":"1.6"}"#
    }

    private func close(_ charger: Int, ts: String) -> String {
        #"{"ts":"\#(ts)","kind":"close","conn":\#(self.connection[charger]),"chargePoint":"FLEET-\#(charger)","by":"charger","code":1006}"#
    }

    private mutating func status(_ charger: Int, _ connector: Int, _ status: String, ts: String, _ emit: (String) -> Void) {
        self.exchange(charger, ts: ts, "StatusNotification", #"{"connectorId":\#(connector),"errorCode":"NoError","status":"\#(status)","timestamp":"\#(ts)"}"#, "{}", emit)
    }

    /// A CALL from the charger and its CALLRESULT.
    private mutating func exchange(_ charger: Int, ts: String, _ action: String, _ payload: String, _ answer: String, _ emit: (String) -> Void) {
        self.message += 1
        let id = "m\(self.message)"
        let head = #"{"ts":"\#(ts)","kind":"frame","conn":\#(self.connection[charger]),"chargePoint":"FLEET-\#(charger)","#
        emit(head + #""dir":"toCSMS","opcode":"text","msgType":2,"msgId":"\#(id)","action":"\#(action)","enc":"json","payload":[2,"\#(id)","\#(action)",\#(payload)]}"#)
        emit(head + #""dir":"toCharger","opcode":"text","msgType":3,"msgId":"\#(id)","action":"\#(action)","enc":"json","payload":[3,"\#(id)",\#(answer)]}"#)
    }
}
