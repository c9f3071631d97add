// PixelMed's DicomSRValidator kept running for many SR files (tests/validators.py: PixelMedBatch).
//
// DicomSRValidator's own main() takes one file, so each file paid about 25 s of JVM start and stylesheet
// compilation; here one validator is built once and each path read from standard input gets the same report
// main() prints (validate(String) with the default options), followed by the line "@@HEPAVOL-END@@".
import com.pixelmed.validate.DicomSRValidator;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;

public class SrBatch {
    public static void main(String[] args) throws Exception {
        DicomSRValidator validator = new DicomSRValidator();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String path;
        while ((path = in.readLine()) != null) {
            try {
                System.out.print(validator.validate(path));
            } catch (Exception e) {
                System.out.println("Driver Error: " + e);
            }
            System.out.println();
            System.out.println("@@HEPAVOL-END@@");
            System.out.flush();
        }
    }
}
