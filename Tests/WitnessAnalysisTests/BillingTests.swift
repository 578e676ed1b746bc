import Foundation
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessPolicy

/// Billing reconciliation on captures written line by line (docs/billing.md).
@Suite("Billing: energy, time and price")
struct BillingTests {
    static let tariff = """
        site:
          tariff:
            currency: EUR
            energy: 0.40
            parking: {perHour: 6.00, grace: 10m}
            sessionFee: 1.00
            includesTax: true
            rounding: 0.01
        """

    /// A 2.0.1 session: connected 08:00, charging 08:00 to 09:00 (20 kWh), parked 09:00 to 09:40, ended 09:40;
    /// the backend answers the Ended event with `totalCost`.
    static func session(totalCost: Double) -> OutageCapture {
        var capture = OutageCapture(.v201)
        capture.open(1, at: "08:00:00")
        func event(_ time: String, _ type: String, seqNo: Int, state: String, wh: Int, context: String, answer: String = "{}") {
            capture.call(
                1, at: time, "TransactionEvent",
                #"{"eventType":"\#(type)","timestamp":"\#(OutageCapture.ts(time))","triggerReason":"ChargingStateChanged","seqNo":\#(seqNo),"transactionInfo":{"transactionId":"tx9","chargingState":"\#(state)"},"idToken":{"idToken":"TAG-1","type":"ISO14443"},"evse":{"id":1,"connectorId":1},"meterValue":[{"timestamp":"\#(OutageCapture.ts(time))","sampledValue":[{"value":\#(wh),"context":"\#(context)"}]}]}"#,
                answer: answer
            )
        }
        event("08:00:00", "Started", seqNo: 0, state: "Charging", wh: 100_000, context: "Transaction.Begin")
        event("09:00:00", "Updated", seqNo: 1, state: "SuspendedEV", wh: 120_000, context: "Sample.Periodic")
        event("09:40:00", "Ended", seqNo: 2, state: "EVConnected", wh: 120_000, context: "Transaction.End", answer: #"{"totalCost":\#(totalCost)}"#)
        capture.call(1, at: "09:41:00", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("09:41:00"))"}"#)
        return capture
    }

    @Test("a backend total that matches the tariff (1.00 fee + 20 kWh × 0.40 + 30 min parked after 10 min grace × 6.00 = 12.00) is no finding; one of 13.50 is, with the arithmetic and the lines")
    func priceAgainstTariff() throws {
        var configuration = AnalyzerConfiguration()
        configuration.site = try PolicyLoader.parse(Self.tariff).site
        let right = try Self.session(totalCost: 12.00).analyse(configuration)
        #expect(right.deviations.filter { (d: Deviation) in d.rule.hasPrefix("billing.") }.isEmpty, "\(right.deviations.map(\.detail))")
        let row = try #require(right.pairs.first?.statistics.billing.first)
        #expect(row.registerWh == 20_000 && row.durationSeconds == 6000 && row.chargingSeconds == 3600 && row.parkingSeconds == 2400, "\(row)")
        #expect(row.expected == 12.00 && row.backendTotal == 12.00 && row.backendFinal && row.idToken == "TAG-1")

        let wrong = try Self.session(totalCost: 13.50).analyse(configuration)
        let finding = try #require(wrong.deviations.first { (d: Deviation) in d.rule == "billing.priceMismatch" })
        #expect(finding.side == .backend, "\(finding.sideReason)")
        #expect(finding.detail.contains("13.5 EUR") && finding.detail.contains("12 EUR"), "\(finding.detail)")
        #expect(finding.detail.contains("session fee 1 + 20 kWh × 0.4 + 0.5 h parking after 10 min grace × 6 = 12"), "\(finding.detail)")
        // On the Ended event, citing the Started event and the answer with the cost.
        #expect(finding.ref?.hasSuffix(":7") == true && finding.related.count == 2 && finding.related[0].hasSuffix(":3") && finding.related[1].hasSuffix(":8"), "\(finding.ref ?? "") \(finding.related)")
        #expect(wrong.pairs.first?.statistics.billing.first?.difference == 1.5)
    }

    @Test("billingReconciles: the session priced as the tariff gives passes; one the backend priced otherwise fails on its side")
    func judged() throws {
        var configuration = AnalyzerConfiguration()
        let policy = try PolicyLoader.parse(Self.tariff + "\nchecks:\n  - {name: billing-reconciles, area: meteringBilling, judge: billingReconciles}\n")
        configuration.site = policy.site
        configuration.checks = policy.checks
        func check(_ report: AnalysisReport) -> CheckResult? { report.pairs.first?.area(.meteringBilling)?.checks.first }
        let right = try #require(check(try Self.session(totalCost: 12.00).analyse(configuration)))
        #expect(right.verdict == .pass && right.detail.contains("reconciles") && right.detail.contains("priced 12 as the tariff gives, as the backend charged"), "\(right.detail)")
        let wrong = try #require(check(try Self.session(totalCost: 13.50).analyse(configuration)))
        #expect(wrong.verdict == .fail && wrong.side == .backend && wrong.detail.contains("billing.priceMismatch"), "\(wrong)")
    }

    @Test("prices without tax: the backend's total includes it, so the tariff's price gets the tax rate before rounding")
    func tax() throws {
        var configuration = AnalyzerConfiguration()
        configuration.site = try PolicyLoader.parse(Self.tariff.replacingOccurrences(of: "includesTax: true", with: "includesTax: false\n    taxRate: 19%")).site
        let report = try Self.session(totalCost: 14.28).analyse(configuration)
        #expect(report.pairs.first?.statistics.billing.first?.expected == 14.28)
        #expect(!report.deviations.contains { (d: Deviation) in d.rule == "billing.priceMismatch" }, "\(report.deviations.map(\.detail))")
    }

    @Test("1.6: time charging and parked from the connector's statuses; interval readings that do not add up to the register are the charger's finding")
    func chargerFigures() throws {
        var capture = OutageCapture(.v16)
        capture.open(1, at: "08:00:00")
        func status(_ time: String, _ status: String) {
            capture.call(1, at: time, "StatusNotification", #"{"connectorId":1,"errorCode":"NoError","status":"\#(status)","timestamp":"\#(OutageCapture.ts(time))"}"#)
        }
        capture.start(1, at: "08:00:00", dated: "08:00:00")
        status("08:00:01", "Charging")
        for (time, wh) in [("08:15:01", 2000), ("08:30:01", 2000)] {
            capture.call(1, at: time, "MeterValues", #"{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"\#(OutageCapture.ts(time))","sampledValue":[{"value":"\#(wh)","measurand":"Energy.Active.Import.Interval"},{"value":"8000","measurand":"Power.Active.Import","unit":"W"}]}]}"#)
        }
        status("08:30:01", "SuspendedEV")
        status("08:45:01", "Finishing")
        capture.stop(1, at: "08:50:01", dated: "08:50:01", wh: 6000)
        capture.call(1, at: "09:00:00", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("09:00:00"))"}"#)
        let report = try capture.analyse(AnalyzerConfiguration())
        let row = try #require(report.pairs.first?.statistics.billing.first)
        // 8 kW for the quarter of an hour between the two power readings.
        #expect(row.registerWh == 5000 && row.intervalWh == 4000 && row.powerWh == 2000 && row.idToken == "T", "\(row)")
        #expect(row.chargingSeconds == 1800 && row.parkingSeconds == 1200 && row.durationSeconds == 3001, "\(row)")
        #expect(row.backendTotal == nil && row.expected == nil)
        let findings = report.deviations.filter { (d: Deviation) in d.rule.hasPrefix("billing.") }
        #expect(findings.map(\.rule) == ["billing.energyMismatch"] && findings.first?.side == .charger, "\(findings.map(\.detail))")
        // The sheet: numbers stay numbers, text is quoted.
        let csv = BillingSheet.csv(report).split(separator: "\n")
        #expect(csv.first == Substring(BillingRow.csvColumns.joined(separator: ",")))
        #expect(csv.count == 2 && csv[1].hasPrefix(#""CP-1","connector 1","7","T","1.6","#) && csv[1].contains(",5000,4000,2000,3001,1800,1200,"), "\(csv)")
    }

    @Test("a running cost is shown, not judged; a state delivered out of order does not run the clock backwards; the stop's repeated interval readings are not added twice")
    func reviewCases() throws {
        var configuration = AnalyzerConfiguration()
        configuration.site = try PolicyLoader.parse(Self.tariff).site
        // The Ended event answered without totalCost, after a CostUpdated of 2.10 while charging.
        var capture = Self.session(totalCost: 0)
        let ended = try #require(capture.lines.lastIndex { $0.contains(#""totalCost":0"#) })
        capture.lines[ended] = capture.lines[ended].replacingOccurrences(of: #"{"totalCost":0.0}"#, with: "{}")
        #expect(!capture.lines[ended].contains("totalCost"))
        capture.lines.insert(contentsOf: [
            #"{"ts":"\#(OutageCapture.ts("08:30:00"))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCharger","opcode":"text","msgType":2,"msgId":"c1","action":"CostUpdated","enc":"json","payload":[2,"c1","CostUpdated",{"totalCost":2.10,"transactionId":"tx9"}]}"#,
            #"{"ts":"\#(OutageCapture.ts("08:30:00"))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCSMS","opcode":"text","msgType":3,"msgId":"c1","action":"CostUpdated","enc":"json","payload":[3,"c1",{}]}"#,
        ], at: 5)
        let report = try capture.analyse(configuration)
        let row = try #require(report.pairs.first?.statistics.billing.first)
        #expect(row.backendTotal == 2.10 && !row.backendFinal && row.expected == 12.00, "\(row)")
        #expect(!report.deviations.contains { (d: Deviation) in d.rule == "billing.priceMismatch" }, "\(report.deviations.map(\.detail))")

        // 1.6: a SuspendedEV dated before the Charging before it is left out; the stop repeats the interval readings.
        var sixteen = OutageCapture(.v16)
        sixteen.open(1, at: "08:00:00")
        sixteen.start(1, at: "08:00:00", dated: "08:00:00")
        sixteen.call(1, at: "08:00:01", "StatusNotification", #"{"connectorId":1,"errorCode":"NoError","status":"Charging","timestamp":"\#(OutageCapture.ts("08:10:00"))"}"#)
        sixteen.call(1, at: "08:00:02", "StatusNotification", #"{"connectorId":1,"errorCode":"NoError","status":"SuspendedEV","timestamp":"\#(OutageCapture.ts("08:05:00"))"}"#)
        let interval = #"{"timestamp":"\#(OutageCapture.ts("08:20:00"))","sampledValue":[{"value":"1000","measurand":"Energy.Active.Import.Interval"}]}"#
        sixteen.call(1, at: "08:20:00", "MeterValues", #"{"connectorId":1,"transactionId":7,"meterValue":[\#(interval)]}"#)
        sixteen.call(
            1, at: "08:30:00", "StopTransaction",
            #"{"transactionId":7,"meterStop":2000,"timestamp":"\#(OutageCapture.ts("08:30:00"))","transactionData":[\#(interval)]}"#, answer: #"{"idTagInfo":{"status":"Accepted"}}"#
        )
        let plain = try sixteen.analyse(AnalyzerConfiguration())
        let sixteenRow = try #require(plain.pairs.first?.statistics.billing.first)
        #expect(sixteenRow.chargingSeconds == 1200 && sixteenRow.parkingSeconds == 0 && sixteenRow.intervalWh == 1000 && sixteenRow.registerWh == 1000, "\(sixteenRow)")
        #expect(!plain.deviations.contains { (d: Deviation) in d.rule == "billing.energyMismatch" })
    }

    @Test("1.6 California pricing: the backend's FinalCost in DataTransfer is the session's price, judged against the tariff")
    func californiaPricing() throws {
        func session(final cost: String) throws -> AnalysisReport {
            var capture = OutageCapture(.v16)
            capture.open(1, at: "08:00:00")
            capture.start(1, at: "08:00:00", dated: "08:00:00")
            func pricing(_ time: String, _ kind: String, _ data: String) {
                capture.call(
                    1, at: time, "DataTransfer", #"{"vendorId":"org.openchargealliance.costmsg","messageId":"\#(kind)","data":"\#(data.replacingOccurrences(of: "\"", with: "\\\""))"}"#,
                    answer: #"{"status":"Accepted"}"#, toCSMS: false
                )
            }
            pricing("08:30:00", "RunningCost", #"{"transactionId":7,"timestamp":"2026-12-04T08:30:00Z","meterValue":6000,"cost":2.00,"state":"Charging"}"#)
            capture.stop(1, at: "09:00:00", dated: "09:00:00", wh: 11_000)
            pricing("09:00:01", "FinalCost", #"{"transactionId":7,"cost":\#(cost),"priceText":"4 EUR","qrCodeText":"x"}"#)
            var configuration = AnalyzerConfiguration()
            configuration.site = try PolicyLoader.parse("site:\n  tariff:\n    currency: EUR\n    energy: 0.40\n").site
            return try capture.analyse(configuration)
        }
        let right = try session(final: "4.00")
        let row = try #require(right.pairs.first?.statistics.billing.first)
        #expect(row.backendTotal == 4.00 && row.backendFinal && row.expected == 4.00 && row.costRef?.hasSuffix(":9") == true, "\(row)")
        #expect(!right.deviations.contains { (d: Deviation) in d.rule == "billing.priceMismatch" })
        let wrong = try session(final: "5.00")
        #expect(wrong.deviations.filter { (d: Deviation) in d.rule == "billing.priceMismatch" }.count == 1, "\(wrong.deviations.map(\.detail))")
    }

    @Test("the CSV escapes a formula a charger sent as its identifier, and leaves no number that is not one")
    func csvSafety() throws {
        var capture = OutageCapture(.v16)
        capture.open(1, at: "08:00:00")
        capture.call(
            1, at: "08:00:01", "StartTransaction", #"{"connectorId":1,"idTag":"=1+2","meterStart":1000,"timestamp":"\#(OutageCapture.ts("08:00:01"))"}"#,
            answer: #"{"transactionId":7,"idTagInfo":{"status":"Accepted"}}"#
        )
        capture.stop(1, at: "08:10:00", dated: "08:10:00", wh: 2000)
        let csv = BillingSheet.csv(try capture.analyse(AnalyzerConfiguration()))
        #expect(csv.contains(#","'=1+2","#) && csv.contains(",1000,"), "\(csv)")
    }

    @Test("a tariff that is not one says what and where")
    func tariffErrors() throws {
        #expect {
            try PolicyLoader.parse("site:\n  tariff:\n    currency: euro\n    energy: -1\n", file: "t.yaml")
        } throws: { error in
            "\(error)".contains("t.yaml:3") && "\(error)".contains("ISO 4217")
        }
        #expect {
            try PolicyLoader.parse("site:\n  tariff:\n    currency: EUR\n    taxRate: 19%\n", file: "t.yaml")
        } throws: { error in
            "\(error)".contains("t.yaml:3") && "\(error)".contains("includesTax: false")
        }
        #expect {
            try PolicyLoader.parse("site:\n  tariff:\n    currency: EUR\n    energy: -1\n    parking: {perHour: 2, grace: forever}\n", file: "t.yaml")
        } throws: { error in
            "\(error)".contains("t.yaml:4") && "\(error)".contains("site.tariff.energy") && "\(error)".contains("t.yaml:5")
        }
    }
}
