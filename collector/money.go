package collector

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Money in a license policy: an amount is a decimal string in a currency's major unit
// ("480.00" USD), held as an integer of its minor unit (48000 cents), never a float.

// currencyDigits are the minor-unit digits of the ISO 4217 currencies (list one, 2024),
// without the precious metals, the SDR and the testing and no-currency codes.
var currencyDigits = func() map[string]int {
	m := map[string]int{}
	for digits, codes := range map[int]string{
		0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
		2: "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD " +
			"CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP " +
			"GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL " +
			"MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN " +
			"QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD " +
			"TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG",
		3: "BHD IQD JOD KWD LYD OMR TND",
		4: "CLF UYW",
	} {
		for _, c := range strings.Fields(codes) {
			m[c] = digits
		}
	}
	return m
}()

// maxMinorUnits bounds an amount (a seat's price for a year): 10^12 minor units, so that a
// price times a million seats stays within int64; a product or sum beyond it (millions of
// inactive licenses at such a price) is unknown (storage.MulMinor, storage.AddMinor).
const maxMinorUnits = 1_000_000_000_000

var (
	errUnknownCurrency = errors.New("not an ISO 4217 currency code")
	errAmount          = errors.New("not a decimal amount")
)

// parseAmount reads a decimal string in currency's major unit into minor units: digits, and
// at most the currency's minor digits after a point; no sign, exponent or grouping.
func parseAmount(s, currency string) (int64, error) {
	digits, ok := currencyDigits[currency]
	if !ok {
		return 0, errUnknownCurrency
	}
	whole, frac, hasPoint := strings.Cut(s, ".")
	switch {
	case whole == "" || !allDigits(whole) || !allDigits(frac) || hasPoint && frac == "":
		return 0, errAmount
	case len(frac) > digits:
		return 0, fmt.Errorf("%w: %s takes %d decimal places at most", errAmount, currency, digits)
	case len(whole) > 13:
		return 0, fmt.Errorf("%w: at most %s", errAmount, formatAmount(maxMinorUnits, currency))
	}
	frac += strings.Repeat("0", digits-len(frac))
	v, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil || v > maxMinorUnits {
		return 0, fmt.Errorf("%w: at most %s", errAmount, formatAmount(maxMinorUnits, currency))
	}
	return v, nil
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// formatAmount writes minor units of currency as a decimal string in its major unit.
func formatAmount(minor int64, currency string) string {
	digits := currencyDigits[currency]
	neg := minor < 0
	if neg {
		minor = -minor
	}
	s := strconv.FormatInt(minor, 10)
	if digits > 0 {
		if len(s) <= digits {
			s = strings.Repeat("0", digits-len(s)+1) + s
		}
		s = s[:len(s)-digits] + "." + s[len(s)-digits:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// amountOf formats an optional amount; nil stays nil (unknown).
func amountOf(minor *int64, currency string) *string {
	if minor == nil {
		return nil
	}
	s := formatAmount(*minor, currency)
	return &s
}
