package taxid_test

import (
	"errors"
	"fmt"

	"github.com/openfinance-br/klavi-link-lambda/pkg/taxid"
)

func ExampleParse() {
	id, err := taxid.Parse("12.ABC.345/01DE-35")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(id.Kind(), id.Bare(), id)

	_, err = taxid.Parse("12.abc.345/01de-35")
	fmt.Println(errors.Is(err, taxid.ErrLowercase))
	// Output:
	// cnpj 12ABC34501DE35 **.***.345/01DE-**
	// true
}
